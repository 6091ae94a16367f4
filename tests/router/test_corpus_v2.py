"""Routing v2 changes nothing it should not: on the labelled corpus, every decision with
adaptation off (even with strong learned evidence) and with adaptation on but nothing learned
is exactly v1's."""

from __future__ import annotations

import dataclasses
import random

from router_svc.chain import build_chain
from router_svc.classify import classify
from router_svc.dispatch import RouterCore
from router_svc.health_view import HealthView
from router_svc.policy import OFF
from tests.router import helpers as h
from uniwizard.providers.tokens import estimate_task_tokens
from uniwizard.types import BackendStats


class NoCaller:
    """decide() never calls the caller."""


def v1(case: h.Case):  # type: ignore[no-untyped-def]
    policy = h.policy()
    estimate = estimate_task_tokens(case.task)
    cls = classify(case.task, policy, estimate)
    return build_chain(case.task, cls, policy, h.BACKENDS, h.healthy(), estimate=estimate, now=0.0)


def core(policy, stats: dict[tuple[str, str], BackendStats]) -> RouterCore:  # type: ignore[no-untyped-def]
    view = HealthView(h.BACKENDS)
    view.health = h.healthy()
    view.stats = stats
    return RouterCore(policy, view, NoCaller(), rng=random.Random(0))  # type: ignore[arg-type]


def strong_evidence_against_v1() -> dict[tuple[str, str], BackendStats]:
    """Every category's last preferred backend rated perfect, the others poor."""
    stats = {}
    for rule in h.policy().categories:
        for i, key in enumerate(rule.prefer):
            best = i == len(rule.prefer) - 1
            stats[(rule.name, key)] = BackendStats(
                rule.name,
                key,
                rated_quality=1.0 if best else 0.1,
                ratings=100.0,
                answers=100.0,
                latency_p50_ms=10.0 if best else 5000.0,
                cost_per_answer_usd=0.0 if best else 1.0,
            )
    return stats


def same(a, b) -> bool:  # type: ignore[no-untyped-def]
    fields = ("backend", "category", "chain", "reasons", "skipped", "estimated_input_tokens")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def test_adapt_off_is_v1_even_with_evidence() -> None:
    policy = h.policy()
    off = dataclasses.replace(
        policy,
        adapt=OFF,
        categories=tuple(dataclasses.replace(c, adapt=OFF) for c in policy.categories),
    )
    router = core(off, strong_evidence_against_v1())
    cases = h.load_corpus()
    assert len(cases) >= 120
    different = [c.label for c in cases if not same(router.decide(c.task), v1(c))]
    assert different == []


def test_adapt_on_with_nothing_learned_is_v1() -> None:
    router = core(h.policy(), {})
    assert h.policy().rule("knowledge").adapt.enabled  # the shipped policy adapts
    different = [c.label for c in h.load_corpus() if not same(router.decide(c.task), v1(c))]
    assert different == []


def test_the_same_evidence_with_adapt_on_does_change_decisions() -> None:
    """The check above can fail: with adaptation on, that evidence reorders many chains."""
    router = core(h.policy(), strong_evidence_against_v1())
    cases = h.load_corpus()
    changed = [c for c in cases if router.decide(c.task).chain != v1(c).chain]
    assert len(changed) > len(cases) / 2
