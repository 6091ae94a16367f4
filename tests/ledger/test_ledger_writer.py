"""The ledger's writer on both backends: commits, ordering, a blocked database, errors, close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from caller_svc.ledger import LedgerRow, LedgerUnavailable, open_ledger
from tests.ledger_db import LedgerDB

Peek = Callable[[], list[tuple[Any, ...]]]


def started(request_id: str = "", backend: str = "gpt") -> LedgerRow:
    return LedgerRow(backend, "m", "", 0, 0, 0.0, "estimated", 0.0, request_id=request_id)


def answered(request_id: str = "", cost: float = 0.5, backend: str = "gpt") -> LedgerRow:
    return LedgerRow(backend, "m", "success", 10, 5, cost, "provider", 12.0, request_id=request_id)


async def test_begin_returns_only_once_the_in_flight_row_is_committed(
    ledger_db: LedgerDB, peek: Peek
) -> None:
    ledger = await open_ledger(ledger_db.target, caller_id="c1")
    row_id = await ledger.begin(started("r1"))
    assert peek() == [(row_id, "r1", "in_flight", 1, 0.0)]  # committed, not just queued
    assert ledger_db.query("SELECT caller_id, client FROM attempts") == [("c1", "")]
    await ledger.aclose()


async def test_the_event_loop_runs_while_a_write_waits_for_the_lock(
    ledger_db: LedgerDB, peek: Peek
) -> None:
    ledger = ledger_db.ledger(timeout=60.0)
    await ledger.ready()
    blocker = ledger_db.hold_write_lock()
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
    blocker.release()
    row_id = await begin
    events.append("begun")
    ticker.cancel()
    assert events.index("released") >= 20
    assert events.index("begun") > events.index("released")
    assert peek() == [(row_id, "blocked", "in_flight", 1, 0.0)]
    await ledger.aclose()


async def test_queued_finishes_and_records_are_all_committed_by_aclose(
    ledger_db: LedgerDB, peek: Peek
) -> None:
    ledger = await open_ledger(ledger_db.target)
    ids = [await ledger.begin(started(f"r{i}")) for i in range(20)]
    for i, row_id in enumerate(ids):
        ledger.finish(row_id, answered(f"r{i}", cost=float(i)))  # queued, not awaited
    for i in range(5):
        ledger.record(replace(answered(f"early{i}"), outcome="bad_request", sent=False))
    await ledger.aclose()
    rows = peek()
    assert rows[:20] == [(ids[i], f"r{i}", "success", 1, float(i)) for i in range(20)]
    assert rows[20:] == [(ids[-1] + 1 + i, f"early{i}", "bad_request", 0, 0.5) for i in range(5)]


async def test_writes_are_applied_in_the_order_they_were_queued(
    ledger_db: LedgerDB, peek: Peek
) -> None:
    ledger = await open_ledger(ledger_db.target)
    row_id = await ledger.begin(started("r"))
    ledger.finish(row_id, replace(answered("r", cost=1.0), outcome="timeout"))
    finished = ledger.finish(row_id, answered("r", cost=2.0))  # the last completion wins
    other = await ledger.begin(started("other"))
    # Reads run after what was queued before them: this process sees its own finishes.
    assert (await ledger.totals())[1].cost_usd == 2.0
    assert await finished is True  # committed: another connection sees it
    assert peek() == [(row_id, "r", "success", 1, 2.0), (other, "other", "in_flight", 1, 0.0)]
    await ledger.aclose()


async def test_a_failed_write_is_an_error_from_begin_and_the_writer_carries_on(
    ledger_db: LedgerDB, peek: Peek
) -> None:
    ledger = ledger_db.ledger(timeout=0.05)
    await ledger.ready()
    first = await ledger.begin(started("first"))
    blocker = ledger_db.hold_write_lock()
    with pytest.raises(LedgerUnavailable, match="lock"):
        await ledger.begin(started("refused"))
    # A completion that fails while locked is kept and retried, not lost; awaiting it says so
    # without waiting for the lock to go.
    assert await ledger.finish(first, answered("first")) is False
    with pytest.raises(LedgerUnavailable):
        await ledger.begin(started("refused too"))
    assert ledger_db.writer_alive(ledger)
    blocker.release()
    second = await ledger.begin(started("second"))  # later writes work again
    await ledger.flush()
    assert peek() == [
        (first, "first", "success", 1, 0.5),
        (second, "second", "in_flight", 1, 0.0),
    ]
    await ledger.aclose()


async def test_operations_queued_together_share_one_transaction(
    ledger_db: LedgerDB, peek: Peek
) -> None:
    ledger = ledger_db.ledger(timeout=60.0)
    await ledger.ready()
    blocker = ledger_db.hold_write_lock()
    begins = [asyncio.create_task(ledger.begin(started(f"b{i}"))) for i in range(10)]
    for i in range(50):
        ledger.record(answered(f"rec{i}"))
    await asyncio.sleep(0)  # every begin is queued now, behind the lock
    assert not any(b.done() for b in begins)
    before = ledger.transactions
    blocker.release()
    ids = await asyncio.gather(*begins)
    await ledger.flush()
    # The writer may have taken the first operation alone before the lock stopped it; all the
    # rest went into the next transaction.
    assert ledger.transactions - before <= 2
    assert len(set(ids)) == 10 and len(peek()) == 60
    await ledger.aclose()


async def test_a_begin_cancelled_while_waiting_leaves_an_unsent_row(
    ledger_db: LedgerDB, peek: Peek
) -> None:
    ledger = ledger_db.ledger(timeout=60.0)
    await ledger.ready()
    blocker = ledger_db.hold_write_lock()
    begin = asyncio.create_task(ledger.begin(started("gone")))
    await asyncio.sleep(0)
    begin.cancel()
    with pytest.raises(asyncio.CancelledError):
        await begin
    blocker.release()
    await ledger.flush()
    assert [r[1:] for r in peek()] == [("gone", "cancelled", 0, 0.0)]  # never in flight
    await ledger.aclose()


async def test_a_row_the_database_rejects_fails_alone(
    ledger_db: LedgerDB, peek: Peek, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = await open_ledger(ledger_db.target)
    ledger_db.reject_backend("poison")
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
    rows = peek()
    assert [r[1] for r in rows] == ["fine", "good"]
    assert rows[1][0] == good_id
    assert "bad-record" in caplog.text  # logged with its values, not dropped silently
    await ledger.aclose()


async def test_aclose_gives_up_on_unwritable_rows_loudly(
    ledger_db: LedgerDB, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = ledger_db.ledger(timeout=0.05)
    await ledger.ready()
    blocker = ledger_db.hold_write_lock()
    ledger.record(answered("stuck"))
    with caplog.at_level(logging.ERROR, logger="caller_svc.ledger"):
        await ledger.aclose(timeout=0.3)  # shutdown does not hang on a locked database
    blocker.release()
    assert "stuck" in caplog.text and "not written" in caplog.text
    await ledger_db.writer_stopped(ledger)
    with pytest.raises(LedgerUnavailable):
        await ledger.begin(started("after close"))


async def test_rows_left_in_flight_become_interrupted_on_the_next_open(
    ledger_db: LedgerDB,
) -> None:
    ledger = await open_ledger(ledger_db.target, caller_id="c1")
    row_id = await ledger.begin(started("lost"))
    await ledger.aclose()  # as if the process died before the answer
    again = await open_ledger(ledger_db.target, caller_id="c1")
    assert await again.interrupted() == 1
    assert await again.interrupted() == 0
    assert [(r["id"], r["outcome"]) for r in await again.rows()] == [(row_id, "interrupted")]
    await again.aclose()


async def test_a_database_that_cannot_be_opened_is_a_clear_error(
    ledger_db: LedgerDB, tmp_path: Any
) -> None:
    if ledger_db.kind == "sqlite":
        (tmp_path / "a-file").write_text("")
        target, expected = str(tmp_path / "a-file" / "l.db"), "cannot open the ledger"
    else:  # a server that is not there; the password never shows
        target = f"postgresql://someone:s3cret@/postgres?host={tmp_path}"
        expected = "cannot open the ledger postgresql://someone:\\*\\*\\*@/postgres"
    with pytest.raises(LedgerUnavailable, match=expected) as caught:
        await open_ledger(target)
    assert "s3cret" not in str(caught.value)
