"""Spending against budgets (registry_svc/budgets.py)."""

from __future__ import annotations

import datetime as dt

from registry_svc.budgets import Spend, status
from uniwizard.config_types import Budget
from uniwizard.types import BudgetState

NOON = dt.datetime(2026, 12, 15, 12, 0, tzinfo=dt.UTC).timestamp()


def test_states_and_details() -> None:
    cap = Budget(daily_usd=5.0, monthly_usd=60.0, warn_at=0.9)
    assert status(Budget(), 1.0, 1.0, NOON).state is BudgetState.NONE
    assert status(cap, 1.0, 10.0, NOON).state is BudgetState.OK
    warn = status(cap, 4.5, 10.0, NOON)
    assert warn.state is BudgetState.WARNING and warn.detail == "daily $5.00, spent $4.50"
    over = status(cap, 5.02, 10.0, NOON)
    assert over.state is BudgetState.OVER and over.detail == "daily $5.00, spent $5.02"
    monthly = status(cap, 1.0, 60.0, NOON)
    assert monthly.state is BudgetState.OVER and monthly.detail == "monthly $60.00, spent $60.00"


def test_a_snapshot_counts_only_in_its_own_day_and_month() -> None:
    spend = Spend(NOON, today={"claude": 2.0, "gpt": 1.0}, month={"claude": 20.0, "gpt": 5.0})
    assert spend.current("claude", NOON + 60) == (2.0, 20.0)
    assert spend.current(None, NOON + 60) == (3.0, 25.0)
    tomorrow = NOON + 24 * 3600
    assert spend.current("claude", tomorrow) == (0.0, 20.0)
    next_month = dt.datetime(2027, 1, 2, tzinfo=dt.UTC).timestamp()
    assert spend.current("claude", next_month) == (0.0, 0.0)
    assert Spend().current("claude", NOON) == (0.0, 0.0)
