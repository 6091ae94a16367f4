"""The labelled task corpus (tests/data/tasks.jsonl) against the shipped policy."""

from __future__ import annotations

from collections import Counter

from router_svc.chain import build_chain
from router_svc.classify import classify
from tests.router import helpers as h
from uniwizard.providers.tokens import estimate_task_tokens

MIN_ACCURACY = 0.95
CATEGORIES = (
    "multimodal",
    "private",
    "long_context",
    "simple",
    "reasoning",
    "bulk_codegen",
    "knowledge",
    "quick",
)


def test_corpus_shape() -> None:
    cases = h.load_corpus()
    assert len(cases) >= 120
    per = Counter(c.expected_category for c in cases)
    assert set(per) == set(CATEGORIES)
    assert min(per.values()) >= 12, per
    allowed = {
        "text",
        "expected_category",
        "expected_backend",
        "attachments",
        "private",
        "latency_budget_ms",
        "input_tokens_hint",
        "document",  # which generated document the hint builds (generic or treaty)
        "seed",  # one of the brief's ten seed tasks
        "note",  # why a tricky label is what it is
    }
    for c in cases:
        assert set(c.raw) <= allowed, c.label
        assert c.expected_backend is None or c.expected_backend in h.BACKENDS


def test_corpus_accuracy() -> None:
    policy = h.policy()
    health = h.healthy()
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    misses: list[str] = []
    for case in h.load_corpus():
        estimate = estimate_task_tokens(case.task)
        cls = classify(case.task, policy, estimate)
        decision = build_chain(
            case.task, cls, policy, h.BACKENDS, health, estimate=estimate, now=0.0
        )
        want = case.expected_category
        total[want] += 1
        if cls.category == want and decision.backend == case.expected_backend:
            right[want] += 1
        else:
            why = "; ".join(str(r) for r in cls.reasons)
            misses.append(
                f"  {case.label}\n    expected {want}/{case.expected_backend}, "
                f"got {cls.category}/{decision.backend} ({why})"
            )

    n, ok = sum(total.values()), sum(right.values())
    print(f"\n{'category':<14}{'right':>7}{'total':>7}{'accuracy':>10}")
    for cat in CATEGORIES:
        print(f"{cat:<14}{right[cat]:>7}{total[cat]:>7}{right[cat] / total[cat]:>10.1%}")
    print(f"{'all':<14}{ok:>7}{n:>7}{ok / n:>10.1%}")
    print("misclassified:" if misses else "misclassified: none")
    for line in misses:
        print(line)
    assert ok / n >= MIN_ACCURACY
