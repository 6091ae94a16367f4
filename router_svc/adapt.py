"""Routing v2: reorder a category's chain by what the registry learned, within hard limits. Pure.

The v1 chain (the policy's preference order, filtered by every hard constraint) is the input;
adaptation only reorders it, never adds to it, so private stays private, modality, context
size, cost ceiling, budgets and health stay exactly as v1 decided.

For each backend of the chain, at its v1 position ``r``:

* quality ``q`` is its mean rating on this category, shrunk towards a prior that keeps the v1
  order (``PRIOR - PRIOR_STEP * r``) with the weight of ``min_count`` ratings: a few ratings
  move it a little, many move it all the way;
* latency is its p50 on answered attempts of this category, cost its cost per answered task
  (failed attempts included), both relative to the most expensive / slowest of the chain
  (exploration also takes a backend's configured prices for a cost not yet seen);
* utility = ``weights.quality * q - weights.latency * latency - weights.cost * cost``.

Evidence only moves a backend once it has ``min_count`` ratings or answers on the category;
until then it keeps its v1 place (its latency and cost count as the chain's average). With no
evidence at all the order is v1's. ``explore`` is the largest share of decisions that may
explore, once the category has ratings at all (exploring learns only through them): on those,
each backend's quality is drawn from its posterior (Thompson sampling: ``Beta`` with the shrunk
mean and the evidence's weight), which tries backends whose quality is still uncertain; a
decision that then differs from the greedy one says "exploring".
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from router_svc.classify import Reason
from router_svc.policy import AdaptConfig
from uniwizard.types import BackendStats

PRIOR = 0.8  # the prior quality of a category's first preferred backend
PRIOR_STEP = 0.05  # each later one in the preference list: this much lower
PRIOR_FLOOR = 0.5


@dataclass(frozen=True, slots=True)
class Ranked:
    chain: tuple[str, ...]
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class _Candidate:
    key: str
    quality: float  # shrunk mean
    weight: float  # ratings + prior weight: the posterior's concentration
    rated: float  # ratings (decayed)
    raw_quality: float
    latency: float | None  # p50 ms, when there is evidence
    cost: float | None  # USD per answer, when there is evidence


def rank(
    category: str,
    chain: Sequence[str],
    stats: Mapping[tuple[str, str], BackendStats],
    config: AdaptConfig,
    rng: random.Random,
    prices: Mapping[str, float] | None = None,
) -> Ranked:
    """The adapted order of ``chain`` and the reasons it differs from v1 (none when it does
    not). ``prices``: what a task is expected to cost on each backend at its configured prices,
    which exploration uses for backends whose cost has no evidence yet."""
    if not config.enabled or len(chain) < 2:
        return Ranked(tuple(chain))
    candidates = [_candidate(category, key, r, stats, config) for r, key in enumerate(chain)]
    if not any(c.rated >= config.min_count or c.latency is not None for c in candidates):
        return Ranked(tuple(chain))  # no evidence: v1's order
    greedy = _order(candidates, config, lambda c: c.quality)
    # Exploring only learns through ratings: an agent that never rates never explores.
    rated = any(c.rated > 0 for c in candidates)
    exploring = rated and rng.random() < config.explore
    if exploring:
        # Exploration is optimistic about what is not known yet: a backend's quality is drawn
        # from its posterior, and its cost, without evidence, is its price.
        known = [dataclasses.replace(c, cost=_priced(c, prices)) for c in candidates]
        chosen = _order(known, config, lambda c: _sample(c, rng))
        chosen = [next(c for c in candidates if c.key == k.key) for k in chosen]
    else:
        chosen = greedy
    reasons: list[Reason] = []
    top = chosen[0]
    if exploring and top is not greedy[0]:
        reasons.append(
            Reason("exploring", f"{top.key} ({config.explore:.0%} share of {category} tasks)")
        )
    elif top.key != chain[0]:
        first = next(c for c in candidates if c.key == chain[0])
        reasons.append(Reason("adapt", f"{category}: {_compare(top, first)}"))
    return Ranked(tuple(c.key for c in chosen), tuple(reasons))


def _candidate(
    category: str,
    key: str,
    position: int,
    stats: Mapping[tuple[str, str], BackendStats],
    config: AdaptConfig,
) -> _Candidate:
    prior = max(PRIOR_FLOOR, PRIOR - PRIOR_STEP * position)
    s = stats.get((category, key))
    rated = s.ratings if s is not None else 0.0
    mean = s.rated_quality if s is not None else 0.0
    m = float(config.min_count)
    quality = (rated * mean + m * prior) / (rated + m) if rated > 0 else prior
    answered = s is not None and s.answers >= config.min_count
    return _Candidate(
        key=key,
        quality=quality,
        weight=rated + m,
        rated=rated,
        raw_quality=mean,
        latency=s.latency_p50_ms if answered and s is not None else None,
        cost=s.cost_per_answer_usd if answered and s is not None else None,
    )


def _order(
    candidates: list[_Candidate], config: AdaptConfig, q: Callable[[_Candidate], float]
) -> list[_Candidate]:
    latency = _relative([c.latency for c in candidates])
    cost = _relative([c.cost for c in candidates])
    utility = {
        c.key: config.quality * q(c) - config.latency * latency[i] - config.cost * cost[i]
        for i, c in enumerate(candidates)
    }
    # Stable: equal utility keeps the v1 order.
    return sorted(candidates, key=lambda c: -utility[c.key])


def _relative(values: list[float | None]) -> list[float]:
    """Each value over the largest one (0..1); no evidence counts as the average of those with
    evidence (so it neither helps nor hurts)."""
    known = [v for v in values if v is not None]
    top = max(known, default=0.0)
    if top <= 0:
        return [0.0] * len(values)
    scaled = [v / top if v is not None else None for v in values]
    mean = sum(s for s in scaled if s is not None) / len(known)
    return [s if s is not None else mean for s in scaled]


def _priced(c: _Candidate, prices: Mapping[str, float] | None) -> float | None:
    if c.cost is not None or prices is None:
        return c.cost
    return prices.get(c.key)


def _sample(c: _Candidate, rng: random.Random) -> float:
    a = max(c.quality * c.weight, 1e-3)
    b = max((1.0 - c.quality) * c.weight, 1e-3)
    return rng.betavariate(a, b)


def _compare(top: _Candidate, first: _Candidate) -> str:
    """Why ``top`` ranks above v1's first choice, in plain words."""
    parts = [f"{top.key} ranked above {first.key}"]
    if top.rated >= 1 or first.rated >= 1:
        parts.append(
            f"rated {top.raw_quality:.2f} over {top.rated:.0f} answers"
            f" vs {first.raw_quality:.2f} over {first.rated:.0f}"
        )
    if top.cost is not None and first.cost is not None:
        parts.append(f"${top.cost:.4f} vs ${first.cost:.4f} per answer")
    if top.latency is not None and first.latency is not None:
        parts.append(f"p50 {top.latency:.0f} ms vs {first.latency:.0f} ms")
    return parts[0] + (" — " + ", ".join(parts[1:]) if len(parts) > 1 else "")
