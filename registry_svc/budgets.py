"""Spending against budgets, per backend and overall. Pure.

Spend comes from the cost ledger: callers read it (their ledger; with a shared ledger, every
caller's rows) and report a :class:`Spend` snapshot; the newest snapshot wins. Days and months
are UTC. A snapshot from an earlier day or month than now counts as nothing spent in the new
one. A backend at or over a cap is ``over`` (routers skip it as ``over_budget``); at or above
``warn_at`` of a cap it is ``warning`` (the health stream carries it, the Evennia Workshop says
so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from uniwizard.config_types import Budget
from uniwizard.time_windows import day_start, month_start, usd
from uniwizard.types import BudgetState, BudgetStatus


@dataclass(frozen=True, slots=True)
class Spend:
    """What the ledger said at ``as_of``: USD per backend today and this month (UTC)."""

    as_of: float = 0.0
    today: Mapping[str, float] = field(default_factory=dict)
    month: Mapping[str, float] = field(default_factory=dict)

    def current(self, key: str | None, now: float) -> tuple[float, float]:
        """(today, this month) for ``key`` (None: all backends), as of ``now``."""
        if self.as_of <= 0:
            return 0.0, 0.0
        same_month = month_start(self.as_of) == month_start(now)
        same_day = day_start(self.as_of) == day_start(now)
        today = self.today if key is None else {key: self.today.get(key, 0.0)}
        month = self.month if key is None else {key: self.month.get(key, 0.0)}
        return (
            sum(today.values()) if same_day else 0.0,
            sum(month.values()) if same_month else 0.0,
        )


def status(budget: Budget, today: float, month: float, as_of: float) -> BudgetStatus:
    """Where ``today`` and ``month`` spending stand against ``budget``."""
    if not budget.capped:
        return BudgetStatus(budget, today, month, BudgetState.NONE, "", as_of)
    used = []  # (fraction of the cap, its words)
    if budget.daily_usd > 0:
        used.append((today / budget.daily_usd, "daily", budget.daily_usd, today))
    if budget.monthly_usd > 0:
        used.append((month / budget.monthly_usd, "monthly", budget.monthly_usd, month))
    fraction, name, cap, spent = max(used)
    if fraction >= 1.0:
        state = BudgetState.OVER
    elif fraction >= budget.warn_at:
        state = BudgetState.WARNING
    else:
        state = BudgetState.OK
    detail = f"{name} {usd(cap)}, spent {usd(spent)}"
    return BudgetStatus(budget, today, month, state, detail, as_of)
