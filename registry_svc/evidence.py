"""The registry's evidence beside health: what each backend does per category (learned from every
attempt and rating) and what it has spent against its budget. No I/O but the learning store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from registry_svc.budgets import Spend, status
from registry_svc.learning import LearningBook
from registry_svc.store import LearningStore, OperatorStoreError
from uniwizard.config_types import Budget, Config
from uniwizard.types import BackendStats, BudgetStatus, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """One attempt as the caller reports it (no prompt text, no secrets)."""

    backend: str
    outcome: Outcome
    retry_after_s: float = 0.0
    detail: str = ""
    category: str = ""
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    cost_usd: float = 0.0
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class RatingReport:
    backend: str
    category: str
    score: float  # [0, 1]
    at: float = 0.0


class Evidence:
    def __init__(self, config: Config, store: LearningStore | None = None) -> None:
        self.config = config
        self.store = store
        self.learning = LearningBook(config.learning)
        self.spend = Spend()
        self._saved_version = 0
        if store is not None:
            self._load(store)

    def _load(self, store: LearningStore) -> None:
        try:
            data = store.load()
            if data is not None:
                self.learning.load(data)
        except (OperatorStoreError, ValueError, KeyError, TypeError) as exc:
            log.warning("learned statistics not restored (starting afresh): %s", exc)
        self._saved_version = self.learning.version

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.learning.config = config.learning

    # -- observations --------------------------------------------------------------------------

    def attempt(self, r: AttemptReport) -> None:
        self.learning.attempt(
            r.category,
            r.backend,
            r.outcome,
            latency_ms=r.latency_ms,
            ttft_ms=r.ttft_ms,
            cost_usd=r.cost_usd,
            at=r.at,
        )

    def rating(self, r: RatingReport) -> None:
        self.learning.rating(r.category, r.backend, r.score, r.at)

    def spent(self, spend: Spend) -> bool:
        """Take a newer ledger snapshot; False when it is older than the one held."""
        if spend.as_of < self.spend.as_of:
            return False
        self.spend = spend
        return True

    # -- reads -------------------------------------------------------------------------------

    def budget(self, key: str, now: float) -> BudgetStatus:
        backend = self.config.backends.get(key)
        today, month = self.spend.current(key, now)
        cap = backend.budget if backend is not None else Budget()
        return status(cap, today, month, self.spend.as_of)

    def overall(self, now: float) -> BudgetStatus:
        today, month = self.spend.current(None, now)
        return status(self.config.budget, today, month, self.spend.as_of)

    def table(self, now: float) -> list[BackendStats]:
        return self.learning.table(now)

    # -- persistence -------------------------------------------------------------------------

    def save_if_changed(self) -> None:
        if self.store is None or self.learning.version == self._saved_version:
            return
        version = self.learning.version
        try:
            self.store.save(self.learning.dump())
            self._saved_version = version
        except OperatorStoreError as exc:  # learning is kept in memory; try again later
            log.warning("could not save learned statistics: %s", exc)
