"""The registry's live state: the health book, its watchers, persistence, reload and timers.

No protobuf here: the servicer converts. One asyncio loop owns everything.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from registry_svc.book import HealthBook
from registry_svc.clock import Clock, SystemClock
from registry_svc.store import OperatorStore
from uniwizard import metrics
from uniwizard.config import ConfigError, load_config
from uniwizard.config_types import BackendConfig, Config
from uniwizard.types import BackendHealth, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthChange:
    """What a watcher receives: a full snapshot (first, and after a reload) or changes."""

    snapshot: bool
    backends: tuple[tuple[BackendConfig, BackendHealth], ...]
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    ok: bool
    error: str = ""
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class Registry:
    def __init__(
        self,
        config: Config,
        store: OperatorStore,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.env = env if env is not None else os.environ
        self.book = HealthBook(config.backends, self.clock, self.env, store.load())
        self._watchers: set[asyncio.Queue[HealthChange]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- reads -------------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """The configured backends' keys, in configuration order."""
        return list(self.book.configs())

    def knows(self, key: str) -> bool:
        return key in self.book.configs()

    def health(self, key: str) -> BackendHealth:
        return self.book.get(key)  # raises UnknownBackendError

    def probe_targets(self) -> list[BackendConfig]:
        """Backends that can be probed: those whose API key (if any) is set."""
        return self.book.probe_targets()

    def probe_config(self, key: str) -> BackendConfig | None:
        """The configuration to probe ``key`` with, or None when it needs no probe (now)."""
        configs = self.book.configs()
        if key not in configs or not self.book.needs_probe(key):
            return None
        return configs[key]

    def statuses(self) -> list[tuple[BackendConfig, BackendHealth]]:
        snap = self.book.snapshot()
        return [(self.book.config(k), snap[k]) for k in snap]

    def status(self, key: str) -> tuple[BackendConfig, BackendHealth]:
        return self.book.config(key), self.book.get(key)  # raises UnknownBackendError

    # -- writes ------------------------------------------------------------------------------

    def report(self, key: str, outcome: Outcome, retry_after_s: float, detail: str) -> None:
        self._broadcast(self.book.record_outcome(key, outcome, retry_after_s, detail))

    def probed(
        self,
        key: str,
        ok: bool,
        latency_ms: float,
        detail: str,
        outcome: Outcome | None,
        retry_after_s: float = 0.0,
    ) -> None:
        self._broadcast(self.book.record_probe(key, ok, latency_ms, detail, outcome, retry_after_s))

    def set_enabled(self, key: str, enabled: bool, by: str, reason: str) -> None:
        changes = self.book.set_enabled(key, enabled, by, reason)
        self.store.save(self.book.operator_state())  # persisted before we answer
        self._broadcast(changes)

    def acquire_trial(self, key: str) -> bool:
        granted = self.book.try_acquire_trial(key)
        self._broadcast(self.book.tick(), rearm=False)
        return granted

    def reload(self) -> ReloadOutcome:
        try:
            config = load_config(self.config.path)
        except ConfigError as exc:
            log.warning("reload rejected, keeping the old configuration: %s", exc)
            return ReloadOutcome(ok=False, error=str(exc))
        result = self.book.reload(config.backends, self.env)
        self.config = config
        self._send(HealthChange(True, tuple(self.statuses()), tuple(result.removed)))
        log.info(
            "reloaded %s: %d added, %d changed, %d removed",
            config.path,
            len(result.added),
            len(result.changed),
            len(result.removed),
        )
        return ReloadOutcome(
            True, "", tuple(result.added), tuple(result.changed), tuple(result.removed)
        )

    # -- watchers ----------------------------------------------------------------------------

    def watch(self) -> asyncio.Queue[HealthChange]:
        q: asyncio.Queue[HealthChange] = asyncio.Queue(maxsize=1000)
        q.put_nowait(HealthChange(True, tuple(self.statuses())))
        self._watchers.add(q)
        return q

    def unwatch(self, q: asyncio.Queue[HealthChange]) -> None:
        self._watchers.discard(q)

    def _broadcast(self, changed: list[BackendHealth], *, rearm: bool = True) -> None:
        if changed:
            self._send(HealthChange(False, tuple((self.book.config(h.key), h) for h in changed)))
        if rearm:  # a new cooldown may end sooner than the timer's current sleep
            self._wake.set()

    def _send(self, change: HealthChange) -> None:
        for q in list(self._watchers):
            try:
                q.put_nowait(change)
            except asyncio.QueueFull:  # a stuck watcher: drop it, it will reconnect
                self._watchers.discard(q)
                log.warning("dropped a health watcher that stopped reading")

    # -- timers ------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start the timer that publishes time-driven changes; it runs until :meth:`stop`."""
        self._timer = asyncio.create_task(self._time_loop(), name="registry-timer")
        metrics.observe_health(
            "registry_svc",
            lambda: [(h.key, h.state.value, h.routable) for h in self.book.snapshot().values()],
        )
        return self._timer

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for q in list(self._watchers):
            self._watchers.discard(q)

    async def _time_loop(self) -> None:
        """Publish time-driven changes (a cooldown ending) when they happen."""
        while True:
            delay = self.book.next_wakeup_in()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, delay or 3600))
            except TimeoutError:
                pass
            self._broadcast(self.book.tick(), rearm=False)
