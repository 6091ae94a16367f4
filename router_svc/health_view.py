"""The router's local view of backends and their health, fed by the registry's WatchHealth.

No per-request registry round trip: routing reads this snapshot. When the registry is down the
router keeps routing on the last snapshot and reconnects with capped, jittered backoff. Before the
first snapshot arrives, it routes on the configuration file it was started with (health UNKNOWN).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import grpc

from router_svc.links import RegistryLink
from uniwizard.config_types import BackendConfig
from uniwizard.convert import backend_from_pb, health_from_pb
from uniwizard.convert_learning import budget_status_from_pb, stats_from_pb
from uniwizard.types import BackendHealth, BackendStats, BudgetStatus
from uniwizard.v1 import registry_pb2

log = logging.getLogger(__name__)

BACKOFF_START = 0.1
BACKOFF_MAX = 5.0


class HealthView:
    def __init__(self, backends: dict[str, BackendConfig] | None = None):
        self.backends: dict[str, BackendConfig] = dict(backends or {})
        self.health: dict[str, BackendHealth] = {}
        # What the registry learned, per (category, backend); and the overall budget.
        self.stats: dict[tuple[str, str], BackendStats] = {}
        self.overall_budget = BudgetStatus()
        self.connected = False
        self.events = 0  # events applied, for tests and diagnostics
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def apply(self, event: registry_pb2.HealthEvent) -> None:
        statuses = [(backend_from_pb(s.backend), health_from_pb(s.health)) for s in event.backends]
        if event.snapshot:
            self.backends = {c.key: c for c, _ in statuses}
            self.health = {h.key: h for _, h in statuses}
        else:
            for c, h in statuses:
                self.backends[c.key] = c
                self.health[h.key] = h
        for key in event.removed:
            self.backends.pop(key, None)
            self.health.pop(key, None)
        if event.has_stats:
            self.stats = {(s.category, s.backend): stats_from_pb(s) for s in event.stats}
        if event.HasField("overall_budget"):
            self.overall_budget = budget_status_from_pb(event.overall_budget)
        self.events += 1

    def start(self, registry: RegistryLink) -> asyncio.Task[None]:
        """Follow the registry until :meth:`stop`; the task never ends by itself."""
        self._task = asyncio.create_task(self._follow(registry), name="watch-health")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait_for(
        self, predicate: Callable[[HealthView], bool], timeout: float = 5.0
    ) -> None:
        """Wait until ``predicate(self)`` holds (tests and start-up)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _follow(self, registry: RegistryLink) -> None:
        delay = BACKOFF_START
        while True:
            try:
                async for event in registry.watch_health():
                    self.apply(event)
                    if not self.connected:
                        log.info("following registry health (%d backends)", len(self.backends))
                    self.connected = True
                    delay = BACKOFF_START
                    await self._notify()
                log.info("registry ended the health stream; reconnecting")
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                if self.connected:
                    log.warning(
                        "lost the registry (%s); routing on the last snapshot", exc.code().name
                    )
            self.connected = False
            await self._notify()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(BACKOFF_MAX, delay * 2)
