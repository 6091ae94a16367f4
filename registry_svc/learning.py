"""What the registry learns per (category, backend) from every attempt and every rating. Pure.

Each attempt the callers report adds an observation: its outcome class, its latency and time to
first token (answered attempts), and its cost. Each rating adds a score in [0, 1]. Older
observations weigh less, in two ways (``LearningConfig``):

* per observation: each new one multiplies the weight of the earlier ones (of the same series)
  by ``1 - 1/window``, so about ``window`` recent observations dominate and a provider whose
  answers change is noticed within a few dozen of them;
* over time: every weight halves every ``half_life_hours``, so a backend that has not been used
  for a week no longer stands on what it did then.

Counts shown are therefore decayed weights, not whole numbers. Latency and time to first token
are kept as decayed histograms over fixed log-spaced buckets (1 ms to 10 min, 6 % apart), from
which p50 and p90 are read.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from uniwizard.config_types import LearningConfig
from uniwizard.types import BackendStats, Outcome

# Histogram bucket upper edges in ms: 1 ms .. 600 s, each 6 % above the previous one.
_RATIO = 1.06
EDGES = tuple(math.exp(math.log(1.0) + i * math.log(_RATIO)) for i in range(230))


def _bucket(ms: float) -> int:
    return min(bisect.bisect_left(EDGES, max(ms, 0.0)), len(EDGES) - 1)


@dataclass(slots=True)
class _Series:
    """A decayed sum of observations: ``weight`` of them adding up to ``total``."""

    weight: float = 0.0
    total: float = 0.0
    at: float = 0.0  # when the weights were last decayed

    def mean(self) -> float:
        return self.total / self.weight if self.weight > 0 else 0.0


@dataclass(slots=True)
class _Histogram:
    """Decayed counts per bucket, stored divided by ``unit`` so decaying is one multiply."""

    counts: list[float] = field(default_factory=lambda: [0.0] * len(EDGES))
    unit: float = 1.0

    def scale(self, factor: float) -> None:
        self.unit *= factor
        if self.unit < 1e-150:  # keep the stored numbers in range
            self.counts = [c * self.unit for c in self.counts]
            self.unit = 1.0

    def add(self, ms: float) -> None:
        self.counts[_bucket(ms)] += 1.0 / self.unit

    def weights(self) -> list[float]:
        return [c * self.unit for c in self.counts]

    def quantile(self, q: float) -> float:
        total = sum(self.counts)
        if total <= 0:
            return 0.0
        goal, seen = q * total, 0.0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= goal:
                return EDGES[i]
        return EDGES[-1]


@dataclass(slots=True)
class _Evidence:
    """Everything learned about one backend on one category."""

    ratings: _Series = field(default_factory=_Series)
    attempts: _Series = field(default_factory=_Series)  # total: cost of every attempt
    outcomes: dict[str, float] = field(default_factory=dict)
    answers: float = 0.0
    latency: _Histogram = field(default_factory=_Histogram)
    ttft: _Histogram = field(default_factory=_Histogram)
    updated_at: float = 0.0


class LearningBook:
    def __init__(self, config: LearningConfig | None = None) -> None:
        self.config = config or LearningConfig()
        self._evidence: dict[tuple[str, str], _Evidence] = {}
        self.version = 0  # bumps on every change (to publish and persist only what changed)

    # -- observations ----------------------------------------------------------------------

    def attempt(
        self,
        category: str,
        backend: str,
        outcome: Outcome,
        *,
        latency_ms: float,
        ttft_ms: float,
        cost_usd: float,
        at: float,
    ) -> None:
        if not category or outcome in (Outcome.CANCELLED, Outcome.IDENTITY_LEAK):
            return  # a cancelled or withheld attempt says nothing about the backend
        e = self._get(category, backend)
        factor = self._decay(e.attempts, at, per_observation=True)
        e.outcomes = {k: v * factor for k, v in e.outcomes.items()}
        e.answers *= factor
        e.latency.scale(factor)
        e.ttft.scale(factor)
        e.attempts.weight += 1.0
        e.attempts.total += max(cost_usd, 0.0)
        e.outcomes[outcome.value] = e.outcomes.get(outcome.value, 0.0) + 1.0
        if outcome is Outcome.SUCCESS:
            e.answers += 1.0
            e.latency.add(latency_ms)
            if ttft_ms > 0:
                e.ttft.add(ttft_ms)
        e.updated_at = max(e.updated_at, at)
        self.version += 1

    def rating(self, category: str, backend: str, score: float, at: float) -> None:
        e = self._get(category, backend)
        self._decay(e.ratings, at, per_observation=True)
        e.ratings.weight += 1.0
        e.ratings.total += min(max(score, 0.0), 1.0)
        e.updated_at = max(e.updated_at, at)
        self.version += 1

    # -- reads -------------------------------------------------------------------------------

    def table(self, now: float) -> list[BackendStats]:
        """Every (category, backend) learned about, decayed to ``now``, sorted."""
        return [self._stats(cat, key, e, now) for (cat, key), e in sorted(self._evidence.items())]

    def _stats(self, category: str, backend: str, e: _Evidence, now: float) -> BackendStats:
        rated = self._time_factor(e.ratings.at, now)
        tried = self._time_factor(e.attempts.at, now)
        attempts = e.attempts.weight * tried
        return BackendStats(
            category=category,
            backend=backend,
            rated_quality=e.ratings.mean(),
            ratings=e.ratings.weight * rated,
            attempts=attempts,
            success_rate=e.answers / e.attempts.weight if e.attempts.weight else 0.0,
            outcomes=tuple(sorted((k, v * tried) for k, v in e.outcomes.items() if v > 1e-9)),
            latency_p50_ms=e.latency.quantile(0.5),
            latency_p90_ms=e.latency.quantile(0.9),
            ttft_p50_ms=e.ttft.quantile(0.5),
            cost_per_answer_usd=e.attempts.total / e.answers if e.answers > 1e-9 else 0.0,
            answers=e.answers * tried,
            updated_at=e.updated_at,
        )

    # -- persistence -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {
            "version": 1,
            "evidence": [
                {
                    "category": cat,
                    "backend": key,
                    "ratings": [e.ratings.weight, e.ratings.total, e.ratings.at],
                    "attempts": [e.attempts.weight, e.attempts.total, e.attempts.at],
                    "outcomes": e.outcomes,
                    "answers": e.answers,
                    "latency": _sparse(e.latency),
                    "ttft": _sparse(e.ttft),
                    "updated_at": e.updated_at,
                }
                for (cat, key), e in self._evidence.items()
            ],
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore what :meth:`dump` wrote; raises ValueError/KeyError/TypeError on a bad file."""
        if data.get("version") != 1:
            raise ValueError(f"unknown learning state version {data.get('version')!r}")
        evidence: dict[tuple[str, str], _Evidence] = {}
        for item in data["evidence"]:
            e = _Evidence(
                ratings=_Series(*map(float, item["ratings"])),
                attempts=_Series(*map(float, item["attempts"])),
                outcomes={str(k): float(v) for k, v in item["outcomes"].items()},
                answers=float(item["answers"]),
                latency=_dense(item["latency"]),
                ttft=_dense(item["ttft"]),
                updated_at=float(item["updated_at"]),
            )
            evidence[(str(item["category"]), str(item["backend"]))] = e
        self._evidence = evidence
        self.version += 1

    # -- decay -------------------------------------------------------------------------------

    def _get(self, category: str, backend: str) -> _Evidence:
        e = self._evidence.get((category, backend))
        if e is None:
            e = self._evidence[(category, backend)] = _Evidence()
        return e

    def _time_factor(self, since: float, now: float) -> float:
        if since <= 0 or now <= since:
            return 1.0
        return 0.5 ** ((now - since) / (self.config.half_life_hours * 3600.0))

    def _decay(self, series: _Series, at: float, *, per_observation: bool) -> float:
        """Decay ``series`` to ``at`` (and by one observation); returns the factor applied."""
        factor = self._time_factor(series.at, at)
        if per_observation and series.weight > 0:
            factor *= 1.0 - 1.0 / self.config.window
        series.weight *= factor
        series.total *= factor
        series.at = max(series.at, at)
        return factor


def _sparse(h: _Histogram) -> dict[str, float]:
    return {str(i): c for i, c in enumerate(h.weights()) if c > 1e-12}


def _dense(data: dict[str, Any]) -> _Histogram:
    h = _Histogram()
    for i, c in data.items():
        index = int(i)
        if 0 <= index < len(EDGES):
            h.counts[index] = float(c)
    return h
