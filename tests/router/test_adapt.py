"""Routing v2's ranking (router_svc/adapt.py): v1's order without evidence, evidence that moves
a backend only past min_count, capped exploration only once the agent rates, and reasons that
say what moved and why."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from router_svc.adapt import rank
from router_svc.policy import OFF, AdaptConfig
from uniwizard.types import BackendStats

ON = AdaptConfig(enabled=True, quality=1.0, latency=0.1, cost=0.2, min_count=5, explore=0.05)
CHAIN = ("gpt", "claude", "gemini", "grok")


def stats(category: str, backend: str, **kw: float) -> tuple[tuple[str, str], BackendStats]:
    return (category, backend), BackendStats(category=category, backend=backend, **kw)


def table(*rows: tuple[tuple[str, str], BackendStats]) -> dict[tuple[str, str], BackendStats]:
    return dict(rows)


def test_off_keeps_v1_order_whatever_was_learned() -> None:
    learned = table(stats("knowledge", "claude", rated_quality=1.0, ratings=100.0))
    ranked = rank("knowledge", CHAIN, learned, OFF, random.Random(1))
    assert ranked.chain == CHAIN and ranked.reasons == ()


def test_no_evidence_keeps_v1_order() -> None:
    for seed in range(50):
        ranked = rank("knowledge", CHAIN, {}, ON, random.Random(seed))
        assert ranked.chain == CHAIN and ranked.reasons == ()


def test_ratings_below_min_count_do_not_move_a_backend() -> None:
    learned = table(
        stats("knowledge", "gpt", rated_quality=0.6, ratings=4.0),
        stats("knowledge", "claude", rated_quality=0.95, ratings=4.0),
    )
    ranked = rank("knowledge", CHAIN, learned, replace_explore(ON, 0.0), random.Random(0))
    assert ranked.chain == CHAIN


def test_enough_ratings_move_the_better_backend_up_and_say_why() -> None:
    learned = table(
        stats("knowledge", "gpt", rated_quality=0.71, ratings=35.0),
        stats("knowledge", "claude", rated_quality=0.86, ratings=40.0),
    )
    ranked = rank("knowledge", CHAIN, learned, replace_explore(ON, 0.0), random.Random(0))
    assert ranked.chain[:2] == ("claude", "gpt")
    assert sorted(ranked.chain) == sorted(CHAIN)  # only the order changes
    (reason,) = ranked.reasons
    assert reason.rule == "adapt"
    assert reason.evidence == (
        "knowledge: claude ranked above gpt — rated 0.86 over 40 answers vs 0.71 over 35"
    )


def test_a_bad_first_choice_falls_below_an_unrated_second() -> None:
    """Priors follow the preference order: once v1's first choice is rated poorly enough, the
    next one (no ratings yet) is tried, which is how v2 recovers from wrong preferences."""
    learned = table(stats("reasoning", "gpt", rated_quality=0.3, ratings=10.0))
    ranked = rank("reasoning", CHAIN, learned, replace_explore(ON, 0.0), random.Random(0))
    assert ranked.chain[0] == "claude"
    assert ranked.chain[-1] == "gpt"


def test_cost_moves_a_backend_only_with_evidence() -> None:
    """Equal rated quality: the backend that costs far less per answer ranks first, once both
    have min_count answers; with fewer answers their cost does not count."""
    rated = dict(rated_quality=0.85, ratings=30.0)
    learned = table(
        stats("knowledge", "gpt", answers=50.0, cost_per_answer_usd=0.01, **rated),
        stats("knowledge", "claude", answers=50.0, cost_per_answer_usd=0.001, **rated),
    )
    ranked = rank("knowledge", CHAIN, learned, replace_explore(ON, 0.0), random.Random(0))
    assert ranked.chain[0] == "claude"
    assert "$0.0010 vs $0.0100 per answer" in ranked.reasons[0].evidence
    few = table(
        stats("knowledge", "gpt", answers=3.0, cost_per_answer_usd=0.01, **rated),
        stats("knowledge", "claude", answers=3.0, cost_per_answer_usd=0.001, **rated),
    )
    assert rank("knowledge", CHAIN, few, replace_explore(ON, 0.0), random.Random(0)).chain[0] == (
        "gpt"
    )


def test_exploration_stays_within_its_share_and_says_so() -> None:
    learned = table(
        stats("knowledge", "gpt", rated_quality=0.9, ratings=60.0, answers=60.0),
        stats("knowledge", "claude", rated_quality=0.5, ratings=6.0),
    )
    rng = random.Random(7)
    n, explored, firsts = 4000, 0, Counter()
    for _ in range(n):
        ranked = rank("knowledge", CHAIN, learned, ON, rng)
        firsts[ranked.chain[0]] += 1
        if ranked.reasons and ranked.reasons[0].rule == "exploring":
            explored += 1
            assert ranked.reasons[0].evidence.endswith("(5% share of knowledge tasks)")
    assert 0 < explored <= 0.05 * n * 1.2  # at most the share (20% slack for the draw)
    assert firsts["gpt"] >= 0.95 * n * 0.98
    assert n - firsts["gpt"] == explored  # every departure from the greedy top says so


def test_no_exploration_without_ratings() -> None:
    learned = table(stats("knowledge", "gpt", answers=50.0, latency_p50_ms=900.0))
    rng = random.Random(3)
    for _ in range(2000):
        ranked = rank("knowledge", CHAIN, learned, ON, rng)
        assert ranked.chain == CHAIN and ranked.reasons == ()


def test_a_one_backend_chain_is_left_alone() -> None:
    assert rank("private", ("local",), {}, ON, random.Random(0)).chain == ("local",)


@pytest.mark.parametrize("category", ["knowledge", "reasoning"])
def test_evidence_of_another_category_does_not_count(category: str) -> None:
    learned = table(stats("quick", "claude", rated_quality=1.0, ratings=100.0))
    assert rank(category, CHAIN, learned, replace_explore(ON, 0.0), random.Random(0)).chain == (
        CHAIN
    )


def replace_explore(config: AdaptConfig, explore: float) -> AdaptConfig:
    from dataclasses import replace

    return replace(config, explore=explore)
