"""What the ledger answers, on both backends: usage totals, ratings, spending, the client."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from caller_svc.ledger import AlreadyRated, LedgerRow, UnknownRequest, open_ledger
from tests.ledger_db import LedgerDB

DAY = 86400.0


def row(backend: str, cost: float, **kw: Any) -> LedgerRow:
    return replace(LedgerRow(backend, "m", "success", 10, 5, cost, "provider", 1.0), **kw)


async def test_usage_time_range(ledger_db: LedgerDB) -> None:
    ledger = await open_ledger(ledger_db.target)
    for ts, cost in ((100.0, 1.0), (200.0, 2.0), (300.0, 4.0)):
        ledger.record(row("gpt", cost, ts=ts))
    # Queued records are seen by the totals that follow them.
    assert (await ledger.totals(since=150))[1].cost_usd == 6.0
    assert (await ledger.totals(since=150, until=250))[1].cost_usd == 2.0
    assert (await ledger.totals())[1].attempts == 3
    await ledger.aclose()


async def test_totals_add_up_the_token_breakdown_per_backend(ledger_db: LedgerDB) -> None:
    ledger = await open_ledger(ledger_db.target)
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
    ledger.record(LedgerRow("gemini", "m", "timeout", 2000, 0, 0.0, "estimated", 1.0))
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
    assert (gemini.attempts, gemini.successes, gemini.estimated_rows) == (2, 1, 1)
    assert (total.cached_input_tokens, total.cache_write_tokens, total.reasoning_tokens) == (
        2222,
        418,
        343,
    )
    assert total.input_tokens == 8000
    assert total.cost_usd == pytest.approx(0.03)


async def test_a_rating_goes_beside_the_attempt_that_answered(ledger_db: LedgerDB) -> None:
    ledger = await open_ledger(ledger_db.target)
    ledger.record(row("gpt", 0.1, request_id="r1", trace_id="t1", outcome="refusal"))
    ledger.record(row("claude", 0.2, request_id="r1", trace_id="t1", category="reasoning"))
    ledger.record(row("kimi", 0.3, request_id="r2", trace_id="t2"))
    await ledger.flush()
    ids = {(r["request_id"], r["backend"]): r["id"] for r in await ledger.rows()}
    rated = await ledger.rate("r1", "", 0.75, "great")
    assert (rated.attempt_id, rated.backend, rated.category, rated.trace_id) == (
        ids[("r1", "claude")],
        "claude",
        "reasoning",
        "t1",
    )
    by_trace = await ledger.rate("", "t2", 0.25, "")
    assert (by_trace.request_id, by_trace.backend) == ("r2", "kimi")
    stored = ledger_db.query("SELECT request_id, attempt_id, score, label FROM ratings ORDER BY id")
    assert stored == [
        ("r1", ids[("r1", "claude")], 0.75, "great"),
        ("r2", ids[("r2", "kimi")], 0.25, ""),
    ]
    with pytest.raises(AlreadyRated, match=r"request r1 was rated 0\.75 at .*ratings are final"):
        await ledger.rate("r1", "", 0.1, "")
    with pytest.raises(UnknownRequest, match="no answered request has request id 'nope'"):
        await ledger.rate("nope", "", 0.5, "")
    with pytest.raises(UnknownRequest, match="trace id 'no-trace'"):
        await ledger.rate("", "no-trace", 0.5, "")
    await ledger.aclose()


async def test_spend_per_backend_today_and_this_month(ledger_db: LedgerDB) -> None:
    ledger = await open_ledger(ledger_db.target)
    month, day = 10 * DAY, 40 * DAY  # UTC day starts, as budgets ask
    for ts, backend, cost in (
        (month - 1, "gpt", 8.0),  # last month: not counted
        (month, "gpt", 1.0),
        (day - 1, "gpt", 0.25),  # yesterday: this month only
        (day, "gpt", 2.0),
        (day + DAY - 1, "claude", 0.5),
    ):
        ledger.record(row(backend, cost, ts=ts))
    assert await ledger.spend(day, month) == {"gpt": (2.0, 3.25), "claude": (0.5, 0.5)}
    with pytest.raises(ValueError, match="whole UTC days"):
        await ledger.spend(day + 1, month)
    await ledger.aclose()


async def test_spend_is_what_the_rows_add_up_to_however_they_were_written(
    ledger_db: LedgerDB,
) -> None:
    """Spend is read from per-day totals the database keeps as rows are written (triggers):
    whatever the mix of begins, finishes, records, cancels and restarts, across callers,
    clients and days, it equals summing the rows, per backend and per client."""
    rng = random.Random(7)
    ledgers = [await open_ledger(ledger_db.target, caller_id=f"c{i}") for i in range(2)]
    for _ in range(120):
        ledger = rng.choice(ledgers)
        ts = rng.choice((3, 4, 5)) * DAY + rng.uniform(0, DAY - 1)
        backend = rng.choice(("gpt", "claude"))
        client = rng.choice(("", "alice", "bob"))
        cost = round(rng.uniform(0, 0.1), 6)
        kind = rng.random()
        if kind < 0.6:
            row_id = await ledger.begin(row(backend, 0.0, ts=ts, client=client))
            if kind < 0.5:
                ledger.finish(row_id, row(backend, cost, ts=ts, client=client))
        else:
            ledger.record(row(backend, cost, ts=ts, sent=False, client=client))
    for ledger in ledgers:
        await ledger.flush()
    assert await ledgers[1].interrupted() >= 0  # a restart: its rows in flight change outcome
    for column, by_client in (("backend", False), ("client", True)):
        scanned: dict[str, list[float]] = {}
        for r in ledger_db.query(f"SELECT {column}, ts, cost_usd FROM attempts"):
            today_month = scanned.setdefault(r[0], [0.0, 0.0])
            today_month[1] += r[2]
            if r[1] >= 5 * DAY:
                today_month[0] += r[2]
        spent = await ledgers[0].spend(5 * DAY, 3 * DAY, by_client=by_client)
        assert set(spent) == set(scanned), column
        for key, (today, month) in spent.items():
            assert today == pytest.approx(scanned[key][0], abs=1e-9)
            assert month == pytest.approx(scanned[key][1], abs=1e-9)
    for ledger in ledgers:
        await ledger.aclose()


async def test_the_client_is_carried_through(ledger_db: LedgerDB) -> None:
    ledger = await open_ledger(ledger_db.target, caller_id="c1")
    row_id = await ledger.begin(row("gpt", 0.0, client="evennia"))
    ledger.finish(row_id, row("gpt", 0.1, client="evennia"))
    ledger.record(row("gpt", 0.2, sent=False))
    rows = await ledger.rows()
    await ledger.aclose()
    assert [(r["client"], r["caller_id"]) for r in rows] == [("evennia", "c1"), ("", "c1")]


async def test_totals_per_client_add_up_and_one_clients_rows_are_its_own(
    ledger_db: LedgerDB,
) -> None:
    ledger = await open_ledger(ledger_db.target)
    for backend, client, cost in (
        ("gpt", "alice", 0.5),
        ("claude", "alice", 0.25),
        ("gpt", "bob", 1.0),
        ("gpt", "", 2.0),
    ):
        ledger.record(row(backend, cost, client=client))
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


async def test_a_rating_is_stored_only_for_the_client_that_asked(ledger_db: LedgerDB) -> None:
    ledger = await open_ledger(ledger_db.target)
    ledger.record(row("gpt", 0.1, request_id="r1", client="alice"))
    with pytest.raises(UnknownRequest, match="no answered request of 'bob' has request id 'r1'"):
        await ledger.rate("r1", "", 0.5, "", client="bob")
    rated = await ledger.rate("r1", "", 0.5, "", client="alice")
    assert rated.backend == "gpt"
    await ledger.aclose()
