"""Per-token budgets: a client (a token's name) whose entry in the tokens file has
``budget: {daily_usd, monthly_usd}`` is refused (RESOURCE_EXHAUSTED, naming the budget, with when
its window starts again: see router_svc/servicer.py) once what it has spent reaches a cap, UTC
days and months as for backend budgets.

What a client has spent is the cost ledger's figure (the caller's ``ClientSpend``: since the start
of the UTC day and of the UTC month, from the ledger's per-day totals), read again when it is older
than ``REFRESH_S``, plus what this router spent for the client since that read, plus the upper
estimate of its attempts in flight (reserved until they end, as for backend budgets). So concurrent
tasks cannot all slip under a cap at once; a task admitted under the cap runs to its end, so a
client may end above its cap by what its last tasks cost, never more. When the ledger cannot be
read, the last figures (or none) and this router's own count are used, and the failure is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from router_svc.budget import SpendTracker
from uniwizard.config_types import Budget
from uniwizard.time_windows import (
    day_start,
    month_start,
    next_day_start,
    next_month_start,
    usd,
)

log = logging.getLogger(__name__)

REFRESH_S = 5.0
# client -> (spent today, spent this month) in USD, from the ledger
Snapshot = dict[str, tuple[float, float]]
Fetch = Callable[[float, float], Awaitable[Snapshot]]


@dataclass(frozen=True, slots=True)
class Reached:
    """A client at a cap: why, in words, and when that cap's window starts again (epoch s)."""

    message: str
    resets_at: float


def reached(
    name: str,
    budget: Budget,
    ledger: tuple[float, float],
    as_of: float,
    tracker: SpendTracker,
    now: float,
) -> Reached | None:
    """Why ``name`` may not start another task, or None. ``ledger``: its (today, month) spend as
    read at ``as_of``; the tracker holds what was spent and reserved since."""
    today_start, this_month = day_start(now), month_start(now)
    today = (ledger[0] if as_of >= today_start else 0.0) + tracker.since(
        name, max(as_of, today_start)
    )
    month = (ledger[1] if as_of >= this_month else 0.0) + tracker.since(
        name, max(as_of, this_month)
    )
    hit = None
    for window, cap, spent, resets_at in (
        ("daily", budget.daily_usd, today, next_day_start(now)),
        ("monthly", budget.monthly_usd, month, next_month_start(now)),
    ):
        if cap > 0 and spent >= cap:
            hit = Reached(
                f"token {name!r} has reached its {window} budget"
                f" ({usd(cap)}; spent {usd(spent)}, counting tasks in flight)",
                resets_at,
            )  # the monthly cap, when both are reached: the later of the two to lift
    return hit


class ClientSpend:
    """This router's view of what each client with a budget has spent (see the module doc)."""

    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self.tracker = SpendTracker()  # keyed by client name
        self._snapshot: Snapshot = {}
        self._as_of = 0.0
        self._next_read = 0.0

    async def over(self, name: str, budget: Budget | None) -> Reached | None:
        """Why ``name`` (with ``budget``) may not start a task now, or None."""
        if budget is None or not budget.capped:
            return None
        now = self._clock()
        if now >= self._next_read:
            await self._read(now)
        ledger = self._snapshot.get(name, (0.0, 0.0))
        return reached(name, budget, ledger, self._as_of, self.tracker, self._clock())

    async def _read(self, now: float) -> None:
        self._next_read = now + REFRESH_S  # one read per period, even while they fail
        try:
            snapshot = await self._fetch(day_start(now), month_start(now))
        except Exception as exc:  # the caller is down: keep counting on what we know
            log.warning("could not read spending per client from the ledger: %s", exc)
            return
        self._snapshot, self._as_of = snapshot, now
        self.tracker.forget_before(max(now - 60.0, month_start(now)))
