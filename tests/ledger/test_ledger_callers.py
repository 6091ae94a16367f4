"""Several callers on one ledger: each marks only its own rows interrupted; reads see all."""

from __future__ import annotations

from caller_svc.ledger import LedgerRow, open_ledger
from tests.ledger_db import LedgerDB


def started(request_id: str) -> LedgerRow:
    return LedgerRow("gpt", "m", "", 0, 0, 0.0, "estimated", 0.0, request_id=request_id)


def answered(request_id: str, cost: float) -> LedgerRow:
    return LedgerRow("gpt", "m", "success", 10, 5, cost, "provider", 1.0, request_id=request_id)


def outcomes(ledger_db: LedgerDB) -> dict[str, tuple[str, str]]:
    rows = ledger_db.query("SELECT request_id, caller_id, outcome FROM attempts")
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_a_restart_marks_only_its_own_rows_interrupted(ledger_db: LedgerDB) -> None:
    a = await open_ledger(ledger_db.target, caller_id="host-a:50053")
    b = await open_ledger(ledger_db.target, caller_id="host-b:50053")
    await a.begin(started("a-lost"))  # a "crashes" with this request in flight
    await a.aclose()
    b_busy = await b.begin(started("b-busy"))  # b is mid-request right now
    await b.begin(started("b-lost"))  # ... and will crash with this one in flight

    # b's restart (another process, same identity) never touches a's row
    b_again = await open_ledger(ledger_db.target, caller_id="host-b:50053")
    assert await b_again.interrupted() == 2
    assert outcomes(ledger_db) == {
        "a-lost": ("host-a:50053", "in_flight"),
        "b-busy": ("host-b:50053", "interrupted"),
        "b-lost": ("host-b:50053", "interrupted"),
    }
    await b_again.aclose()
    await b.aclose()

    # a third caller starting up touches nobody's rows
    c = await open_ledger(ledger_db.target, caller_id="host-c:50053")
    assert await c.interrupted() == 0
    # a's restart marks its own row, and only it
    a_again = await open_ledger(ledger_db.target, caller_id="host-a:50053")
    assert await a_again.interrupted() == 1
    assert outcomes(ledger_db)["a-lost"] == ("host-a:50053", "interrupted")
    assert b_busy  # (its row id was real)
    await a_again.aclose()
    await c.aclose()


async def test_every_caller_reads_every_callers_rows(ledger_db: LedgerDB) -> None:
    a = await open_ledger(ledger_db.target, caller_id="a")
    b = await open_ledger(ledger_db.target, caller_id="b")
    a.record(answered("r1", 1.0))
    await a.flush()
    b.record(answered("r2", 2.0))
    await b.flush()
    for ledger in (a, b):
        _, total = await ledger.totals()
        assert (total.attempts, total.cost_usd) == (2, 3.0)
        assert await ledger.spend(0.0, 0.0) == {"gpt": (3.0, 3.0)}
        assert {r["caller_id"] for r in await ledger.rows()} == {"a", "b"}
    # a rating may come through any caller, whichever one answered
    rated = await b.rate("r1", "", 0.5, "")
    assert rated.request_id == "r1"
    await a.aclose()
    await b.aclose()
