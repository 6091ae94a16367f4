"""The cost ledger: one row per attempt, totals that add up, and rows that survive SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest

from caller_svc.ledger import open_ledger
from tests.ledger_db import LedgerDB
from tests.stack import ROOT, SIM_KEY, running_stack, sim_config, task
from uniwizard.convert import request_to_pb
from uniwizard.v1 import caller_pb2, caller_pb2_grpc
from uniwizard_sim.app import running_simulator

ROME = "Who was the first emperor of Rome?"


async def test_totals_equal_the_sum_of_attempts_and_match_the_simulator(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 503}, times=2)
        results = [await stack.dispatch(task(ROME)) for _ in range(3)]
        results.append(await stack.dispatch(task("Analyze the trade-offs of event sourcing")))
        usage = await stack.caller_stub.Usage(caller_pb2.UsageRequest(), timeout=5)
        seen_by_sim = len(stack.sim.requests())
    attempts = [a for r in results for a in r.attempts]
    assert usage.total.attempts == len(attempts) == seen_by_sim
    assert usage.total.cost_usd == pytest.approx(sum(a.cost_usd for a in attempts))
    assert usage.total.cost_usd == pytest.approx(sum(r.cost_usd for r in results))
    assert usage.total.input_tokens == sum(a.usage.input_tokens for a in attempts)
    assert usage.total.output_tokens == sum(a.usage.output_tokens for a in attempts)
    assert usage.total.successes == len(results)
    per = {u.backend: u for u in usage.backends}
    assert sum(u.attempts for u in per.values()) == usage.total.attempts
    assert per["gpt"].attempts == sum(1 for a in attempts if a.backend == "gpt")
    ledger = await open_ledger(str(tmp_path / "ledger.db"))
    rows = await ledger.rows()
    await ledger.aclose()
    assert {r["request_id"] for r in rows} == {r.request_id for r in results}
    assert {r["trace_id"] for r in rows} == {r.trace_id for r in results}
    assert {r["category"] for r in rows} == {"knowledge", "reasoning"}


async def start_caller(
    path: str, ledger: str, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m caller_svc`` on port 0 with ``ledger``; returns it and its address."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "caller_svc",
        "--config",
        path,
        "--address",
        "127.0.0.1:0",
        "--registry",
        "",
        "--ledger",
        ledger,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    return proc, line.rsplit(" ", 1)[-1].strip()


async def test_a_caller_killed_right_after_answering_still_has_the_row(
    tmp_path: Path, ledger_db: LedgerDB
) -> None:
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp_path)
        env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path), UNIWIZARD_CALLER_ID="killed")
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        proc, target = await start_caller(path, ledger_db.target, env)
        async with grpc.aio.insecure_channel(target) as ch:
            result = await caller_pb2_grpc.CallerStub(ch).Call(
                caller_pb2.CallRequest(
                    backend="claude",
                    request_id="kill-test",
                    request=request_to_pb(task(ROME).request),
                ),
                timeout=20,
            )
        proc.send_signal(signal.SIGKILL)  # no chance to flush anything
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    rows = ledger_db.query("SELECT request_id, backend, cost_usd, outcome, caller_id FROM attempts")
    assert rows == [("kill-test", "claude", pytest.approx(result.cost_usd), "success", "killed")]
    assert result.cost_usd > 0


async def test_a_caller_killed_mid_request_leaves_one_interrupted_row(
    tmp_path: Path, ledger_db: LedgerDB
) -> None:
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp_path)
        env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path), UNIWIZARD_CALLER_ID="caller-1")
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        proc, target = await start_caller(path, ledger_db.target, env)
        sim.add_fault("gpt", {"kind": "hang"})
        async with grpc.aio.insecure_channel(target) as ch:
            call = caller_pb2_grpc.CallerStub(ch).Call(
                caller_pb2.CallRequest(
                    backend="gpt", request_id="lost", request=request_to_pb(task(ROME).request)
                ),
                timeout=20,
            )
            while not sim.requests("gpt"):
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            with pytest.raises(grpc.aio.AioRpcError):
                await call
        await proc.wait()
        # another caller starting on the same ledger leaves the row alone ...
        other, _ = await start_caller(path, ledger_db.target, {**env, "UNIWIZARD_CALLER_ID": "x"})
        other.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(other.wait(), 20) == 0
        assert ledger_db.query("SELECT outcome FROM attempts") == [("in_flight",)]
        again, _ = await start_caller(path, ledger_db.target, env)  # ... its restart marks it
        again.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(again.wait(), 20) == 0
    rows = ledger_db.query("SELECT request_id, outcome, sent, caller_id FROM attempts")
    assert rows == [("lost", "interrupted", 1, "caller-1")]
    assert len(rows) == len(sim.requests("gpt"))
