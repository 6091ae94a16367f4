"""Spending, read from the cost ledger and sent to the registry, which holds it against budgets.

The ledger is read at start and every ``PERIOD_S`` (with a ledger shared by several callers,
that read also carries the others' spending), and at once when a UTC day or month begins. In
between, each attempt that cost money is added to the last snapshot as it is recorded, and the
snapshot goes out soon after (``DEBOUNCE_S``, so a burst is one report). The read itself is
cheap (the ledger keeps spending per day, ``spend_daily``), but it is a round trip to the
ledger's writer, in the way of the rows being written, and with a shared database it is
everyone's spending, which the period bounds how often it is asked for.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

from caller_svc.ledger import Ledger, LedgerUnavailable
from caller_svc.record import OutcomeReporter
from uniwizard.time_windows import day_start, month_start

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.05
PERIOD_S = 5.0


class SpendWatcher:
    def __init__(self, ledger: Ledger, reporter: OutcomeReporter) -> None:
        self.ledger = ledger
        self.reporter = reporter
        self.reads = 0  # ledger reads so far
        self._spend: dict[str, tuple[float, float]] = {}  # backend -> (today, this month)
        self._windows = (0.0, 0.0)  # the day and month the snapshot counts
        self._stale = True  # read the ledger at the next turn
        self._moved = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The first snapshot right away: budgets are known from the start."""
        if self._task is None:
            # Its own context: the reads belong to no request's trace.
            self._task = asyncio.create_task(
                self._run(), name="spend-watcher", context=contextvars.Context()
            )

    def spent(self, backend: str, cost_usd: float) -> None:
        """An attempt cost money (its row is being recorded): count it, report soon."""
        windows = _windows(time.time())
        if windows != self._windows and self._task is not None:
            self._roll(windows)  # a new day began: it starts at 0 (and is read at once)
            self._stale = True
        today, month = self._spend.get(backend, (0.0, 0.0))
        self._spend[backend] = (today + cost_usd, month + cost_usd)
        self.start()
        self._moved.set()

    async def _run(self) -> None:
        read_at = -PERIOD_S
        while True:
            now = time.time()
            if self._stale or now - read_at >= PERIOD_S or self._windows != _windows(now):
                read_at, self._stale = now, False
                await self.read()
            else:
                self.reporter.spent(now, dict(self._spend))
            try:
                async with asyncio.timeout(max(0.0, read_at + PERIOD_S - time.time())):
                    await self._moved.wait()
                await asyncio.sleep(DEBOUNCE_S)
            except TimeoutError:
                pass
            self._moved.clear()

    async def read(self) -> None:
        """Replace the snapshot with what the ledger says, and report it."""
        now = time.time()
        windows = _windows(now)
        try:
            spend = await self.ledger.spend(*windows)
        except LedgerUnavailable as exc:
            log.warning("could not read spending from the ledger: %s", exc)
            self._roll(windows)  # go on counting; read again in PERIOD_S
            self.reporter.spent(now, dict(self._spend))
            return
        self.reads += 1
        self._spend, self._windows = spend, windows
        self.reporter.spent(now, dict(spend))

    def _roll(self, windows: tuple[float, float]) -> None:
        """Move the snapshot into a new day (and month) without the ledger: it starts at 0."""
        day, month = windows
        if day != self._windows[0]:
            keep_month = month == self._windows[1]
            self._spend = {k: (0.0, m if keep_month else 0.0) for k, (_, m) in self._spend.items()}
        self._windows = windows

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _windows(now: float) -> tuple[float, float]:
    return day_start(now), month_start(now)
