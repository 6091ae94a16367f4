"""Per-token budgets in the router (router_svc/client_budget.py), without a server."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from router_svc.budget import SpendTracker
from router_svc.client_budget import REFRESH_S, ClientSpend, Reached, reached
from uniwizard.config_types import Budget

NOON = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC).timestamp()
DAILY = Budget(daily_usd=1.0)
MONTHLY = Budget(monthly_usd=10.0)


def test_a_client_is_stopped_once_its_spending_reaches_a_cap() -> None:
    none = SpendTracker()
    assert reached("a", DAILY, (0.99, 5.0), NOON - 10, none, NOON) is None
    assert reached("a", DAILY, (1.0, 5.0), NOON - 10, none, NOON) == Reached(
        "token 'a' has reached its daily budget ($1.00; spent $1.00, counting tasks in flight)",
        resets_at=dt.datetime(2026, 12, 2, tzinfo=dt.UTC).timestamp(),  # the next UTC day
    )
    monthly = reached("a", MONTHLY, (0.0, 10.5), NOON - 10, none, NOON)
    assert monthly is not None and "monthly budget ($10.00" in monthly.message
    assert monthly.resets_at == dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp()
    # Both caps reached: the monthly one is what lifts last.
    both = reached("a", Budget(1.0, 10.0), (1.0, 10.0), NOON - 10, none, NOON)
    assert both is not None and both.resets_at == monthly.resets_at
    # What this router spent since the read, and its tasks in flight, count too.
    mine = SpendTracker()
    mine.release("a", 0.0, 0.5, NOON - 5)
    mine.reserve("a", 0.5)
    assert reached("a", DAILY, (0.0, 0.0), NOON - 10, mine, NOON) is not None
    assert reached("b", DAILY, (0.0, 0.0), NOON - 10, mine, NOON) is None  # not b's
    # Yesterday's figure does not count today (a new UTC day), the month's still does.
    tomorrow = NOON + 86400
    assert reached("a", DAILY, (5.0, 5.0), NOON, none, tomorrow) is None
    assert reached("a", MONTHLY, (5.0, 11.0), NOON, none, tomorrow) is not None
    next_month = dt.datetime(2027, 1, 1, 1, tzinfo=dt.UTC).timestamp()
    assert reached("a", MONTHLY, (5.0, 11.0), NOON, none, next_month) is None


async def test_the_ledger_is_read_at_most_once_a_period_and_a_failed_read_keeps_counting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [NOON]
    reads: list[tuple[float, float]] = []
    answer: dict[str, tuple[float, float]] | Exception = {"a": (0.4, 0.4)}

    async def fetch(day: float, month: float) -> dict[str, tuple[float, float]]:
        reads.append((day, month))
        if isinstance(answer, Exception):
            raise answer
        return answer

    spend = ClientSpend(fetch, clock=lambda: now[0])
    assert await spend.over("a", None) is None and reads == []  # no budget: nothing read
    assert await spend.over("a", DAILY) is None
    assert reads == [(NOON - 12 * 3600, dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp())]
    spend.tracker.release("a", 0.0, 0.7, NOON + 1)  # this router spent more
    now[0] = NOON + 2
    assert await spend.over("a", DAILY) is not None
    assert len(reads) == 1
    answer = ConnectionError("caller down")
    now[0] = NOON + REFRESH_S + 3
    caplog.set_level(logging.WARNING)
    assert await spend.over("a", DAILY) is not None  # the last figures and its own count
    assert "could not read spending per client" in caplog.text
    assert len(reads) == 2
