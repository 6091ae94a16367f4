"""Two callers sharing one PostgreSQL ledger: the Usage RPC and `uniwizard usage` of either one
answer for both, a rating goes through either, and each row names the caller that wrote it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from caller_svc.server import build_caller
from tests.pg import TestPostgres
from tests.stack import ROOT, SIM_KEY, sim_config, task
from uniwizard.convert import request_to_pb
from uniwizard.net import aio_channel
from uniwizard.v1 import caller_pb2, caller_pb2_grpc, common_pb2
from uniwizard_sim.app import running_simulator

ROME = "Who was the first emperor of Rome?"


async def test_usage_through_any_caller_counts_every_callers_attempts(
    tmp_path: Path, postgres: TestPostgres, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp_path)
        for b in config.backends.values():
            if b.api_key_env:
                monkeypatch.setenv(b.api_key_env, SIM_KEY)
        callers = [
            await build_caller(path, "127.0.0.1:0", ledger_path=pg_url, caller_id=name)
            for name in ("caller-a", "caller-b")
        ]
        for caller in callers:
            await caller.start()
        try:
            costs = []
            async with (
                aio_channel(callers[0].target, "tests") as a,
                aio_channel(callers[1].target, "tests") as b,
            ):
                stubs = [caller_pb2_grpc.CallerStub(a), caller_pb2_grpc.CallerStub(b)]
                for i, (stub, backend) in enumerate(
                    [(stubs[0], "gpt"), (stubs[0], "claude"), (stubs[1], "gemini")]
                ):
                    result = await stub.Call(
                        caller_pb2.CallRequest(
                            backend=backend,
                            request_id=f"r{i}",
                            request=request_to_pb(task(ROME).request),
                        ),
                        timeout=20,
                    )
                    assert result.outcome == common_pb2.OUTCOME_CLASS_SUCCESS
                    costs.append(result.cost_usd)
                usages = [await s.Usage(caller_pb2.UsageRequest(), timeout=5) for s in stubs]
                # caller b rates the answer caller a gave
                rated = await stubs[1].Rate(common_pb2.RateRequest(request_id="r1", score=0.9))
            assert rated.backend == "claude"
            for usage in usages:
                assert usage.total.attempts == 3 == usage.total.successes
                assert usage.total.cost_usd == pytest.approx(sum(costs))
                assert {u.backend for u in usage.backends} == {"gpt", "claude", "gemini"}
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "uniwizard.cli",
                "usage",
                "--json",
                cwd=ROOT,
                env={**os.environ, "UNIWIZARD_CALLER_ADDR": callers[1].target},
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(cli.communicate(), 30)
            assert cli.returncode == 0
            total = json.loads(out)["total"]
            assert total["attempts"] == 3
            assert total["cost_usd"] == pytest.approx(sum(costs), abs=1e-8)
        finally:
            for caller in callers:
                await caller.stop(grace=1.0)
    with postgres.admin(pg_url) as conn:
        rows = conn.execute("SELECT request_id, caller_id FROM attempts ORDER BY id").fetchall()
    assert rows == [("r0", "caller-a"), ("r1", "caller-a"), ("r2", "caller-b")]
