"""What only the PostgreSQL ledger has: connections the server drops, reads beside the writer."""

from __future__ import annotations

import asyncio

from caller_svc.ledger import LedgerRow, open_ledger
from caller_svc.ledger_pg import PostgresLedger
from tests.pg import TestPostgres


def answered(request_id: str) -> LedgerRow:
    return LedgerRow("gpt", "m", "success", 10, 5, 0.5, "provider", 1.0, request_id=request_id)


def drop_connections(postgres: TestPostgres, caller_id: str) -> int:
    with postgres.admin() as conn:
        found = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"uniwizard-caller {caller_id}",),
        ).fetchall()
    return len(found)


async def test_connections_the_server_drops_are_replaced_without_failing_a_row(
    postgres: TestPostgres, pg_url: str
) -> None:
    ledger = await open_ledger(pg_url, caller_id="dropped")
    first = await ledger.begin(answered("before"))
    assert drop_connections(postgres, "dropped") >= 1  # e.g. a server restart or failover
    second = await ledger.begin(answered("after"))  # no LedgerUnavailable: a new connection
    assert await ledger.finish(first, answered("before")) is True
    _, total = await ledger.totals()
    assert total.attempts == 2 and second > first
    await ledger.aclose()


async def test_a_read_stuck_on_a_lock_does_not_hold_up_the_writer(
    postgres: TestPostgres, pg_url: str
) -> None:
    ledger = PostgresLedger(pg_url, caller_id="r", lock_timeout=60.0)
    await ledger.ready()
    ledger.record(answered("r1"))
    await ledger.flush()
    blocker = postgres.admin(pg_url)
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")
    rating = asyncio.create_task(ledger.rate("r1", "", 0.5, ""))  # waits for the lock ...
    await asyncio.sleep(0.2)
    assert not rating.done()
    row_id = await asyncio.wait_for(ledger.begin(answered("r2")), 5)  # ... attempts go on
    assert await asyncio.wait_for(ledger.finish(row_id, answered("r2")), 5) is True
    blocker.execute("ROLLBACK")
    blocker.close()
    assert (await rating).request_id == "r1"
    await ledger.aclose()
