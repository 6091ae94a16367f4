"""Spending, read from the cost ledger and sent to the registry, which holds it against budgets.

Soon after an attempt that cost money (``DEBOUNCE_S``, so a burst is one read) and every
``PERIOD_S`` anyway: with a ledger shared by several callers, the periodic read also carries
the others' spending. Days and months are UTC.
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
        self._moved = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def touch(self) -> None:
        """An attempt cost money: read the ledger again soon."""
        if self._task is None:
            # Its own context: the reads belong to no request's trace.
            self._task = asyncio.create_task(
                self._run(), name="spend-watcher", context=contextvars.Context()
            )
        self._moved.set()

    def start(self) -> None:
        self.touch()  # the first snapshot right away: budgets are known from the start

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(PERIOD_S):
                    await self._moved.wait()
                await asyncio.sleep(DEBOUNCE_S)
            except TimeoutError:
                pass
            self._moved.clear()
            await self.report_now()

    async def report_now(self) -> None:
        now = time.time()
        try:
            spend = await self.ledger.spend(day_start(now), month_start(now))
        except LedgerUnavailable as exc:
            log.warning("could not read spending from the ledger: %s", exc)
            return
        self.reporter.spent(now, spend)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
