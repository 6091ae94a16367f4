"""The cost ledger: one row per attempt, totals that add up, and rows that survive SIGKILL."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from caller_svc.ledger import (
    LedgerRow,
    LedgerUnavailable,
    SQLiteLedger,
    UnknownRequest,
    open_ledger,
)
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
    ledger.record(
        LedgerRow(
            "claude",
            "m",
            "success",
            1 + 30 + 40,
            2,
            0.25,
            "provider",
            1.0,
            cached_input_tokens=30,
            cache_write_tokens=40,
            reasoning_tokens=1,
            client="alice",
        )
    )
    _, total = await ledger.totals()
    assert (total.attempts, total.cost_usd) == (2, 0.75)
    rows = await ledger.rows()
    assert [r["sent"] for r in rows] == [1, 1]
    assert [r["client"] for r in rows] == ["", "alice"]  # rows from before names: unnamed
    # the old row gets the new columns as 0; the new row keeps its breakdown
    assert [(r["cache_write_tokens"], r["reasoning_tokens"]) for r in rows] == [(0, 0), (40, 1)]
    assert (total.cached_input_tokens, total.cache_write_tokens, total.reasoning_tokens) == (
        30,
        40,
        1,
    )
    await ledger.aclose()


async def test_totals_per_client_add_up_and_one_clients_rows_are_its_own(tmp_path: Path) -> None:
    ledger = await open_ledger(str(tmp_path / "l.db"))
    for backend, client, cost in (
        ("gpt", "alice", 0.5),
        ("claude", "alice", 0.25),
        ("gpt", "bob", 1.0),
        ("gpt", "", 2.0),
    ):
        ledger.record(
            LedgerRow(backend, "m", "success", 10, 5, cost, "provider", 1.0, client=client)
        )
    per, total = await ledger.totals(by="client")
    assert [(t.client, t.backend, t.attempts, t.cost_usd) for t in per] == [
        ("", "", 1, 2.0),
        ("alice", "", 2, 0.75),
        ("bob", "", 1, 1.0),
    ]
    assert (total.backend, total.attempts, total.cost_usd) == ("total", 4, 3.75)
    mine, own = await ledger.totals(client="alice")
    assert [(t.backend, t.cost_usd) for t in mine] == [("claude", 0.25), ("gpt", 0.5)]
    assert own.cost_usd == 0.75
    with pytest.raises(ValueError, match="totals by 'model'"):
        await ledger.totals(by="model")
    await ledger.aclose()


async def test_a_rating_is_stored_only_for_the_client_that_asked(tmp_path: Path) -> None:
    ledger = await open_ledger(str(tmp_path / "l.db"))
    row = LedgerRow("gpt", "m", "success", 1, 1, 0.1, "provider", 1.0, request_id="r1")
    ledger.record(replace(row, client="alice"))
    with pytest.raises(UnknownRequest, match="no answered request of 'bob' has request id 'r1'"):
        await ledger.rate("r1", "", 0.5, "", client="bob")
    rated = await ledger.rate("r1", "", 0.5, "", client="alice")
    assert rated.backend == "gpt"
    await ledger.aclose()


async def test_totals_add_up_the_token_breakdown_per_backend(tmp_path: Path) -> None:
    ledger = await open_ledger(str(tmp_path / "l.db"))
    for backend, cached, written, reasoning in (
        ("claude", 1111, 418, 0),
        ("claude", 1111, 0, 0),
        ("gemini", 0, 0, 343),
    ):
        ledger.record(
            LedgerRow(
                backend,
                "m",
                "success",
                2000,
                500,
                0.01,
                "provider",
                1.0,
                cached_input_tokens=cached,
                cache_write_tokens=written,
                reasoning_tokens=reasoning,
            )
        )
    per, total = await ledger.totals()
    await ledger.aclose()
    claude, gemini = per
    assert (claude.backend, claude.cached_input_tokens, claude.cache_write_tokens) == (
        "claude",
        2222,
        418,
    )
    assert (gemini.backend, gemini.reasoning_tokens, gemini.cached_input_tokens) == (
        "gemini",
        343,
        0,
    )
    assert (total.cached_input_tokens, total.cache_write_tokens, total.reasoning_tokens) == (
        2222,
        418,
        343,
    )
    assert total.input_tokens == 6000


# -- the writer thread: commits, ordering, a blocked disk, errors ----------------------------------


def started(request_id: str = "", backend: str = "gpt") -> LedgerRow:
    return LedgerRow(backend, "m", "", 0, 0, 0.0, "estimated", 0.0, request_id=request_id)


def answered(request_id: str = "", cost: float = 0.5, backend: str = "gpt") -> LedgerRow:
    return LedgerRow(backend, "m", "success", 10, 5, cost, "provider", 12.0, request_id=request_id)


def peek(path: Path) -> list[tuple[int, str, str, int, float]]:
    """What another process would see: committed rows only, through a connection of its own."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(
            "SELECT id, request_id, outcome, sent, cost_usd FROM attempts ORDER BY id"
        ).fetchall()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection holding SQLite's write lock (as another process or a checkpoint might)."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


async def test_begin_returns_only_once_the_in_flight_row_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = await open_ledger(str(path))
    row_id = await ledger.begin(started("r1"))
    assert peek(path) == [(row_id, "r1", "in_flight", 1, 0.0)]  # committed, not just queued
    await ledger.aclose()


async def test_the_event_loop_runs_while_a_write_waits_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), busy_timeout=60.0)
    await ledger.ready()
    blocker = hold_write_lock(path)
    events: list[str] = []

    async def other_work() -> None:
        while True:
            events.append("tick")
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(other_work())
    begin = asyncio.create_task(ledger.begin(started("blocked")))
    while events.count("tick") < 20:  # the loop keeps serving while the write waits
        await asyncio.sleep(0.001)
    assert not begin.done()
    events.append("released")
    blocker.execute("ROLLBACK")
    blocker.close()
    row_id = await begin
    events.append("begun")
    ticker.cancel()
    assert events.index("released") >= 20
    assert events.index("begun") > events.index("released")
    assert peek(path) == [(row_id, "blocked", "in_flight", 1, 0.0)]
    await ledger.aclose()


async def test_queued_finishes_and_records_are_all_committed_by_aclose(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = await open_ledger(str(path))
    ids = [await ledger.begin(started(f"r{i}")) for i in range(20)]
    for i, row_id in enumerate(ids):
        ledger.finish(row_id, answered(f"r{i}", cost=float(i)))  # queued, not awaited
    for i in range(5):
        ledger.record(replace(answered(f"early{i}"), outcome="bad_request", sent=False))
    await ledger.aclose()
    rows = peek(path)
    assert rows[:20] == [(ids[i], f"r{i}", "success", 1, float(i)) for i in range(20)]
    assert rows[20:] == [(ids[-1] + 1 + i, f"early{i}", "bad_request", 0, 0.5) for i in range(5)]


async def test_writes_are_applied_in_the_order_they_were_queued(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = await open_ledger(str(path))
    row_id = await ledger.begin(started("r"))
    ledger.finish(row_id, replace(answered("r", cost=1.0), outcome="timeout"))
    finished = ledger.finish(row_id, answered("r", cost=2.0))  # the last completion wins
    other = await ledger.begin(started("other"))
    # Reads run after what was queued before them: this process sees its own finishes.
    assert (await ledger.totals())[1].cost_usd == 2.0
    assert await finished is True  # committed: another connection sees it
    assert peek(path) == [(row_id, "r", "success", 1, 2.0), (other, "other", "in_flight", 1, 0.0)]
    await ledger.aclose()


async def test_a_failed_write_is_an_error_from_begin_and_the_writer_carries_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), busy_timeout=0.05)
    await ledger.ready()
    first = await ledger.begin(started("first"))
    blocker = hold_write_lock(path)
    with pytest.raises(LedgerUnavailable, match="locked"):
        await ledger.begin(started("refused"))
    # A completion that fails while locked is kept and retried, not lost; awaiting it says so
    # without waiting for the lock to go.
    assert await ledger.finish(first, answered("first")) is False
    with pytest.raises(LedgerUnavailable):
        await ledger.begin(started("refused too"))
    assert ledger._thread.is_alive()
    blocker.execute("ROLLBACK")
    blocker.close()
    second = await ledger.begin(started("second"))  # later writes work again
    await ledger.flush()
    assert peek(path) == [
        (first, "first", "success", 1, 0.5),
        (second, "second", "in_flight", 1, 0.0),
    ]
    await ledger.aclose()


async def test_operations_queued_together_share_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), busy_timeout=60.0)
    await ledger.ready()
    blocker = hold_write_lock(path)
    begins = [asyncio.create_task(ledger.begin(started(f"b{i}"))) for i in range(10)]
    for i in range(50):
        ledger.record(answered(f"rec{i}"))
    await asyncio.sleep(0)  # every begin is queued now, behind the lock
    assert not any(b.done() for b in begins)
    before = ledger.transactions
    blocker.execute("ROLLBACK")
    blocker.close()
    ids = await asyncio.gather(*begins)
    await ledger.flush()
    # The writer may have taken the first operation alone before the lock stopped it; all the
    # rest went into the next transaction.
    assert ledger.transactions - before <= 2
    assert len(set(ids)) == 10 and len(peek(path)) == 60
    await ledger.aclose()


async def test_a_begin_cancelled_while_waiting_leaves_an_unsent_row(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), busy_timeout=60.0)
    await ledger.ready()
    blocker = hold_write_lock(path)
    begin = asyncio.create_task(ledger.begin(started("gone")))
    await asyncio.sleep(0)
    begin.cancel()
    with pytest.raises(asyncio.CancelledError):
        await begin
    blocker.execute("ROLLBACK")
    blocker.close()
    await ledger.flush()
    assert [r[1:] for r in peek(path)] == [("gone", "cancelled", 0, 0.0)]  # never in flight
    await ledger.aclose()


async def test_a_row_sqlite_rejects_fails_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.db"
    ledger = await open_ledger(str(path))
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TRIGGER no_poison BEFORE INSERT ON attempts WHEN NEW.backend = 'poison'"
            " BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )
        db.commit()
    ledger.record(answered("bad-record", backend="poison"))
    bad = asyncio.create_task(ledger.begin(started("bad-begin", backend="poison")))
    good = asyncio.create_task(ledger.begin(started("good")))
    ledger.record(answered("fine"))
    with caplog.at_level(logging.ERROR, logger="caller_svc.ledger"):
        with pytest.raises(LedgerUnavailable, match="poisoned row"):
            await bad
        good_id = await good
        await ledger.flush()
    # (the records were queued first: the begins were queued when their tasks first ran)
    assert [r[:2] for r in peek(path)] == [(good_id - 1, "fine"), (good_id, "good")]
    assert "bad-record" in caplog.text  # logged with its values, not dropped silently
    await ledger.aclose()


async def test_aclose_gives_up_on_unwritable_rows_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), busy_timeout=0.05)
    await ledger.ready()
    blocker = hold_write_lock(path)
    ledger.record(answered("stuck"))
    with caplog.at_level(logging.ERROR, logger="caller_svc.ledger"):
        await ledger.aclose(timeout=0.3)  # shutdown does not hang on a locked file
    blocker.execute("ROLLBACK")
    blocker.close()
    assert "stuck" in caplog.text and "not written" in caplog.text
    ledger._thread.join(10)
    assert not ledger._thread.is_alive()
    with pytest.raises(LedgerUnavailable):
        await ledger.begin(started("after close"))


async def test_rows_left_in_flight_become_interrupted_on_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = await open_ledger(str(path))
    row_id = await ledger.begin(started("lost"))
    await ledger.aclose()  # as if the process died before the answer
    again = await open_ledger(str(path))
    assert await again.interrupted() == 1
    assert await again.interrupted() == 0
    assert [(r["id"], r["outcome"]) for r in await again.rows()] == [(row_id, "interrupted")]
    await again.aclose()


async def test_open_ledger_takes_a_path_or_memory_and_fails_clearly(tmp_path: Path) -> None:
    memory = await open_ledger(":memory:")
    row_id = await memory.begin(started("m"))
    memory.finish(row_id, answered("m"))
    assert [(r["request_id"], r["outcome"]) for r in await memory.rows()] == [("m", "success")]
    await memory.aclose()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(LedgerUnavailable, match="cannot open"):
        await open_ledger(str(tmp_path / "a-file" / "l.db"))
    with pytest.raises(ValueError, match="postgresql"):
        await open_ledger("postgresql://localhost/uniwizard")
