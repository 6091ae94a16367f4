"""Budgets as a hard constraint (router_svc/budget.py and chain.py's over_budget)."""

from __future__ import annotations

import datetime as dt

from router_svc.budget import BudgetCheck, SpendTracker
from router_svc.chain import build_chain
from router_svc.classify import classify
from tests.router import helpers as h
from uniwizard.config_types import Budget
from uniwizard.providers.tokens import estimate_task_tokens
from uniwizard.types import BackendHealth, BudgetState, BudgetStatus, HealthState

NOON = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC).timestamp()
CAP = Budget(daily_usd=5.0, monthly_usd=60.0)


def health(key: str, today: float, month: float, as_of: float = NOON - 10) -> BackendHealth:
    status = BudgetStatus(CAP, today, month, BudgetState.OK, "", as_of)
    return BackendHealth(key, HealthState.HEALTHY, budget=status)


def test_a_task_that_could_break_the_daily_cap_is_skipped_with_the_numbers() -> None:
    check = BudgetCheck(
        {"claude": health("claude", 4.98, 40.0)}, BudgetStatus(), SpendTracker(), NOON
    )
    assert check.over("claude", 0.01) is None
    assert check.over("claude", 0.05) == "daily $5.00, spent $4.98, this task up to $0.0500"
    spent = BudgetCheck(
        {"claude": health("claude", 5.02, 40.0)}, BudgetStatus(), SpendTracker(), NOON
    )
    assert spent.over("claude", 0.01) == "daily $5.00, spent $5.02"


def test_the_monthly_cap_and_the_overall_cap_count_too() -> None:
    check = BudgetCheck(
        {"claude": health("claude", 1.0, 59.99)}, BudgetStatus(), SpendTracker(), NOON
    )
    assert check.over("claude", 0.05) == "monthly $60.00, spent $59.99, this task up to $0.0500"
    overall = BudgetStatus(Budget(daily_usd=10.0), 9.99, 9.99, BudgetState.WARNING, "", NOON - 5)
    check = BudgetCheck({"gpt": BackendHealth("gpt")}, overall, SpendTracker(), NOON)
    assert check.over("gpt", 0.05) == "overall daily $10.00, spent $9.99, this task up to $0.0500"


def test_a_free_backend_is_never_over_budget() -> None:
    check = BudgetCheck(
        {"local": health("local", 99.0, 999.0)}, BudgetStatus(), SpendTracker(), NOON
    )
    assert check.over("local", 0.0) is None


def test_own_spending_and_reservations_since_the_snapshot_count() -> None:
    tracker = SpendTracker()
    check = BudgetCheck({"claude": health("claude", 4.0, 4.0)}, BudgetStatus(), tracker, NOON)
    assert check.over("claude", 0.5) is None
    tracker.reserve("claude", 0.5)  # an attempt in flight
    assert check.over("claude", 0.6) is not None  # 4.0 + 0.5 reserved + 0.6 > 5
    tracker.release("claude", 0.5, 0.2, NOON - 1)  # it cost 0.2, after the snapshot
    assert tracker.since("claude", NOON - 10) == 0.2
    assert check.over("claude", 0.75) is None  # 4.0 + 0.2 + 0.75 <= 5
    assert check.over("claude", 0.85) is not None
    tracker.release("gpt", 0.0, 0.3, NOON - 20)  # before the snapshot: already counted there
    assert tracker.since(None, NOON - 10) == 0.2


def test_a_snapshot_from_yesterday_counts_nothing_today() -> None:
    yesterday = NOON - 24 * 3600
    check = BudgetCheck(
        {"claude": health("claude", 4.99, 10.0, as_of=yesterday)},
        BudgetStatus(),
        SpendTracker(),
        NOON,
    )
    assert check.over("claude", 0.5) is None


def test_over_budget_is_a_skip_in_the_chain() -> None:
    policy = h.policy()
    task = h.make_task("Who was the first emperor of Rome?")
    estimate = estimate_task_tokens(task)
    cls = classify(task, policy, estimate)
    states = h.healthy()
    broke = {k: BackendHealth(k, HealthState.HEALTHY) for k in states}
    broke["gpt"] = health("gpt", 5.0, 5.0)
    decision = build_chain(
        task,
        cls,
        policy,
        h.BACKENDS,
        broke,
        estimate=estimate,
        now=NOON,
        budget=BudgetCheck(broke, BudgetStatus(), SpendTracker(), NOON),
    )
    assert "gpt" not in decision.chain
    (skip,) = [s for s in decision.skipped if s.backend == "gpt"]
    assert skip.reason == "over_budget" and skip.detail.startswith("daily $5.00, spent $5.00")
