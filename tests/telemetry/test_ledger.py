"""The cost ledger: one row per attempt, totals that add up, and rows that survive SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import grpc
import pytest

from caller_svc.ledger import LedgerRow, open_ledger
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


async def test_usage_time_range(tmp_path: Path) -> None:
    ledger = await open_ledger(str(tmp_path / "l.db"))
    for ts, cost in ((100.0, 1.0), (200.0, 2.0), (300.0, 4.0)):
        ledger.record(LedgerRow("gpt", "m", "success", 10, 5, cost, "provider", 1.0, ts=ts))
    # Queued records are seen by the totals that follow them (same thread, in order).
    assert (await ledger.totals(since=150))[1].cost_usd == 6.0
    assert (await ledger.totals(since=150, until=250))[1].cost_usd == 2.0
    assert (await ledger.totals())[1].attempts == 3
    await ledger.aclose()


async def test_a_caller_killed_right_after_answering_still_has_the_row(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp_path)
        env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path))
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
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
            str(db),
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        target = line.rsplit(" ", 1)[-1].strip()
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
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request_id, backend, cost_usd FROM attempts").fetchall()
    assert rows == [("kill-test", "claude", pytest.approx(result.cost_usd))]
    assert result.cost_usd > 0
    assert time.time() > 0


async def test_a_caller_killed_mid_request_leaves_one_interrupted_row(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp_path)
        env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path))
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        args = (
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
            str(db),
        )

        async def start() -> tuple[asyncio.subprocess.Process, str]:
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT
            )
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            return proc, line.rsplit(" ", 1)[-1].strip()

        proc, target = await start()
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
        again, _ = await start()  # the restart marks what was in flight
        again.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(again.wait(), 20) == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request_id, outcome, sent FROM attempts").fetchall()
    assert rows == [("lost", "interrupted", 1)]
    assert len(rows) == len([r for r in sim.requests("gpt")])


async def test_a_ledger_from_an_older_version_is_migrated_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the first release's table, without `sent`
        db.execute(
            "CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
            " trace_id TEXT NOT NULL DEFAULT '', request_id TEXT NOT NULL DEFAULT '',"
            " backend TEXT NOT NULL, model TEXT NOT NULL, category TEXT NOT NULL DEFAULT '',"
            " attempt INTEGER NOT NULL DEFAULT 1, outcome TEXT NOT NULL,"
            " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
            " cached_input_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL,"
            " cost_source TEXT NOT NULL, latency_ms REAL NOT NULL,"
            " http_status INTEGER NOT NULL DEFAULT 0,"
            " identity_redactions INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO attempts (ts, backend, model, outcome, input_tokens,"
            " output_tokens, cost_usd, cost_source, latency_ms)"
            " VALUES (1, 'gpt', 'm', 'success', 3, 4, 0.5, 'provider', 1)"
        )
    ledger = await open_ledger(str(path))
    ledger.record(LedgerRow("claude", "m", "success", 1, 2, 0.25, "provider", 1.0))
    _, total = await ledger.totals()
    assert (total.attempts, total.cost_usd) == (2, 0.75)
    assert [r["sent"] for r in await ledger.rows()] == [1, 1]
    await ledger.aclose()
