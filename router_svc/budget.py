"""Budgets as a hard constraint on the chain: a backend whose cap this task could break is skipped
as ``over_budget``.

Spend comes from the registry's health stream: each backend's (and the overall) spending as the
cost ledger held it at ``as_of``. A router adds what it spent itself since then, and what its
attempts in flight may still cost (their estimate, reserved until they end), so one router never
overshoots a cap even between snapshots or under concurrency. Other routers' spending arrives
with the next snapshot (within seconds).

A task is held to ``spent + its own upper estimate`` (input estimate plus the full output
reservation, at the backend's prices), so a backend is skipped before a cap would be crossed,
not after. A free backend (price 0) is never skipped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from uniwizard.config_types import Budget
from uniwizard.time_windows import day_start, month_start, usd
from uniwizard.types import BackendHealth, BudgetStatus


@dataclass(frozen=True, slots=True)
class _Spent:
    at: float
    backend: str
    cost: float


class SpendTracker:
    """What this router spent and has in flight, by backend."""

    def __init__(self) -> None:
        self._spent: deque[_Spent] = deque()
        self._reserved: dict[str, float] = {}

    def reserve(self, backend: str, cost: float) -> None:
        self._reserved[backend] = self._reserved.get(backend, 0.0) + cost

    def release(self, backend: str, reserved: float, cost: float, at: float) -> None:
        """An attempt ended: its reservation goes, what it really cost stays."""
        left = self._reserved.get(backend, 0.0) - reserved
        if left > 1e-12:
            self._reserved[backend] = left
        else:
            self._reserved.pop(backend, None)
        if cost > 0:
            self._spent.append(_Spent(at, backend, cost))

    def since(self, backend: str | None, since: float) -> float:
        """Spent after ``since`` plus reserved now (``backend`` None: every backend)."""
        spent = sum(
            s.cost
            for s in self._spent
            if s.at > since and (backend is None or s.backend == backend)
        )
        if backend is None:
            return spent + sum(self._reserved.values())
        return spent + self._reserved.get(backend, 0.0)

    def forget_before(self, t: float) -> None:
        while self._spent and self._spent[0].at < t:
            self._spent.popleft()


class BudgetCheck:
    """One decision's view of budgets: the registry's snapshot plus this router's own spending."""

    def __init__(
        self,
        health: Mapping[str, BackendHealth],
        overall: BudgetStatus,
        tracker: SpendTracker,
        now: float | None = None,
    ) -> None:
        self.health = health
        self.overall = overall
        self.tracker = tracker
        self.now = time.time() if now is None else now

    def capped(self, key: str) -> bool:
        """Whether any cap applies to ``key`` (its own or the overall one): if none does, no
        cost can be over budget, and the cost need not be estimated."""
        if self.overall.budget.capped:
            return True
        h = self.health.get(key)
        return h is not None and h.budget.budget.capped

    def over(self, key: str, cost: float) -> str | None:
        """Why ``key`` cannot take a task that may cost ``cost``, or None."""
        if cost <= 0:
            return None
        h = self.health.get(key)
        if h is not None and h.budget.budget.capped:
            why = self._over(h.budget, key, cost)
            if why:
                return why
        if self.overall.budget.capped:
            why = self._over(self.overall, None, cost)
            if why:
                return "overall " + why
        return None

    def _over(self, status: BudgetStatus, key: str | None, cost: float) -> str | None:
        budget: Budget = status.budget
        today_start, this_month = day_start(self.now), month_start(self.now)
        fresh_day = status.as_of >= today_start
        fresh_month = status.as_of >= this_month
        today = (status.spent_today_usd if fresh_day else 0.0) + self.tracker.since(
            key, max(status.as_of, today_start)
        )
        month = (status.spent_month_usd if fresh_month else 0.0) + self.tracker.since(
            key, max(status.as_of, this_month)
        )
        for name, cap, spent in (
            ("daily", budget.daily_usd, today),
            ("monthly", budget.monthly_usd, month),
        ):
            if cap > 0 and spent + cost > cap:
                detail = f"{name} {usd(cap)}, spent {usd(spent)}"
                if spent < cap:
                    detail += f", this task up to {usd(cost)}"
                return detail
        return None
