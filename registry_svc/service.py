"""The registry's live state: the health book, the evidence beside it (learned statistics,
spending against budgets), its watchers, persistence, reload and timers.

No protobuf here: the servicer converts. One asyncio loop owns everything.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from registry_svc.book import HealthBook
from registry_svc.budgets import Spend
from registry_svc.clock import Clock, SystemClock
from registry_svc.evidence import AttemptReport, Evidence, RatingReport
from registry_svc.store import LearningStore, OperatorStore
from uniwizard import metrics
from uniwizard.config import ConfigError, load_config
from uniwizard.config_types import BackendConfig, Config
from uniwizard.types import BackendHealth, BackendStats, BudgetStatus, Outcome

# How often learned statistics go out to watchers (when they changed), and are saved.
STATS_PUSH_S = 0.2
STATS_SAVE_S = 30.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthChange:
    """What a watcher receives: a full snapshot (first, and after a reload) or changes."""

    snapshot: bool
    backends: tuple[tuple[BackendConfig, BackendHealth], ...]
    removed: tuple[str, ...] = ()
    stats: tuple[BackendStats, ...] | None = None  # the whole learned table, when it changed
    overall_budget: BudgetStatus | None = None  # when it changed


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
        learning_store: LearningStore | None = None,
    ):
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.env = env if env is not None else os.environ
        self.book = HealthBook(config.backends, self.clock, self.env, store.load())
        self.evidence = Evidence(config, learning_store)
        self._watchers: set[asyncio.Queue[HealthChange]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._budgets = self._budget_view()

    # -- reads -------------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """The configured backends' keys, in configuration order."""
        return list(self.book.configs())

    def knows(self, key: str) -> bool:
        return key in self.book.configs()

    def health(self, key: str) -> BackendHealth:
        return self._with_budget(self.book.get(key))  # raises UnknownBackendError

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
        return [(self.book.config(k), self._with_budget(snap[k])) for k in snap]

    def status(self, key: str) -> tuple[BackendConfig, BackendHealth]:
        return self.book.config(key), self.health(key)  # raises UnknownBackendError

    def stats(self) -> list[BackendStats]:
        """What has been learned per (category, backend), decayed to now."""
        return self.evidence.table(self.clock.time())

    def overall_budget(self) -> BudgetStatus:
        return self.evidence.overall(self.clock.time())

    # -- writes ------------------------------------------------------------------------------

    def report(self, key: str, outcome: Outcome, retry_after_s: float, detail: str) -> None:
        self.report_attempts([AttemptReport(key, outcome, retry_after_s, detail)])

    def report_attempts(self, reports: list[AttemptReport]) -> None:
        """Outcomes of attempts (from the callers): health, then what they teach."""
        changed: list[BackendHealth] = []
        for r in reports:
            changed += self.book.record_outcome(r.backend, r.outcome, r.retry_after_s, r.detail)
            self.evidence.attempt(r)
        self._broadcast(_latest(changed))

    def report_ratings(self, ratings: list[RatingReport]) -> None:
        for r in ratings:
            self.evidence.rating(r)

    def report_spend(self, spend: Spend) -> None:
        """A snapshot of the ledger's spending: budgets that moved go out to watchers."""
        if not self.evidence.spent(spend):
            return
        before, self._budgets = self._budgets, self._budget_view()
        moved = [k for k, v in self._budgets.items() if before.get(k) != v]
        if not moved:
            return
        backends = tuple(
            (self.book.config(k), self.health(k)) for k in moved if k is not None
        )
        overall = self._budgets[None] if None in moved else None
        self._send(HealthChange(False, backends, overall_budget=overall))

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
        self.evidence.reconfigure(config)
        self._budgets = self._budget_view()
        self._send(self._snapshot(tuple(result.removed)))
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
        q.put_nowait(self._snapshot())
        self._watchers.add(q)
        return q

    def _snapshot(self, removed: tuple[str, ...] = ()) -> HealthChange:
        return HealthChange(
            True,
            tuple(self.statuses()),
            removed,
            stats=tuple(self.stats()),
            overall_budget=self.overall_budget(),
        )

    def _with_budget(self, h: BackendHealth) -> BackendHealth:
        return replace(h, budget=self.evidence.budget(h.key, self.clock.time()))

    def _budget_view(self) -> dict[str | None, BudgetStatus]:
        """Every backend's budget status, and the overall one (key None)."""
        now = self.clock.time()
        view: dict[str | None, BudgetStatus] = {
            k: self.evidence.budget(k, now) for k in self.book.configs()
        }
        view[None] = self.evidence.overall(now)
        return view

    def unwatch(self, q: asyncio.Queue[HealthChange]) -> None:
        self._watchers.discard(q)

    def _broadcast(self, changed: list[BackendHealth], *, rearm: bool = True) -> None:
        if changed:
            backends = tuple((self.book.config(h.key), self._with_budget(h)) for h in changed)
            self._send(HealthChange(False, backends))
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

    def start(self) -> list[asyncio.Task[None]]:
        """Start the timers (time-driven changes, stats pushes); they run until :meth:`stop`."""
        self._tasks = [
            asyncio.create_task(self._time_loop(), name="registry-timers"),
            asyncio.create_task(self._stats_loop(), name="registry-stats"),
        ]
        metrics.observe_health(
            "registry_svc",
            lambda: [(h.key, h.state.value, h.routable) for h in self.book.snapshot().values()],
        )
        return self._tasks

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.evidence.save_if_changed()
        for q in list(self._watchers):
            self._watchers.discard(q)

    async def _stats_loop(self) -> None:
        """Push the learned table to watchers when it changed (at most every STATS_PUSH_S),
        and save it every STATS_SAVE_S."""
        pushed = self.evidence.learning.version
        since_save = 0.0
        while True:
            await asyncio.sleep(STATS_PUSH_S)
            version = self.evidence.learning.version
            if version != pushed:
                pushed = version
                self._send(HealthChange(False, (), stats=tuple(self.stats())))
            since_save += STATS_PUSH_S
            if since_save >= STATS_SAVE_S:
                since_save = 0.0
                self.evidence.save_if_changed()

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


def _latest(changes: list[BackendHealth]) -> list[BackendHealth]:
    """The last change per backend, in order (a batch may change one backend several times)."""
    latest = {h.key: h for h in changes}
    return list(latest.values())
