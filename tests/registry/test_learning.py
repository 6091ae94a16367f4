"""What the registry learns per (category, backend) and how it forgets (registry_svc/learning)."""

from __future__ import annotations

import json

import pytest

from registry_svc.learning import LearningBook
from uniwizard.config_types import LearningConfig
from uniwizard.types import Outcome

T0 = 1_800_000_000.0
HOUR = 3600.0


def attempt(book: LearningBook, outcome: Outcome = Outcome.SUCCESS, **kw: float) -> None:
    values = {"latency_ms": 100.0, "ttft_ms": 0.0, "cost_usd": 0.001, "at": T0} | kw
    book.attempt("knowledge", "gpt", outcome, **values)


def row(book: LearningBook, now: float = T0):
    (only,) = book.table(now)
    return only


def test_outcomes_latency_cost_and_success_rate() -> None:
    book = LearningBook(LearningConfig(window=10_000, half_life_hours=10_000))
    for ms in (100, 200, 300, 400, 1000):
        attempt(book, latency_ms=ms, cost_usd=0.002, ttft_ms=ms / 2)
    attempt(book, Outcome.RATE_LIMITED, cost_usd=0.0)
    attempt(book, Outcome.REFUSAL, cost_usd=0.001)  # a refusal is billed
    r = row(book)
    near = {"rel": 2e-3}  # a window of 10,000 still discounts a little per observation
    assert r.attempts == pytest.approx(7, **near)
    assert r.answers == pytest.approx(5, **near)
    assert r.success_rate == pytest.approx(5 / 7, **near)
    outcomes = {"success": 5, "rate_limited": 1, "refusal": 1}
    assert dict(r.outcomes) == pytest.approx(outcomes, **near)
    assert r.cost_per_answer_usd == pytest.approx((5 * 0.002 + 0.001) / 5, **near)
    # p50 of 100..1000 ms is 300 ms, to the histogram's 6% resolution; p90 is the slowest
    assert 300 <= r.latency_p50_ms <= 300 * 1.06
    assert 1000 <= r.latency_p90_ms <= 1000 * 1.06
    assert 150 <= r.ttft_p50_ms <= 150 * 1.06


def test_cancelled_and_withheld_attempts_teach_nothing() -> None:
    book = LearningBook()
    attempt(book, Outcome.CANCELLED)
    attempt(book, Outcome.IDENTITY_LEAK)
    assert book.table(T0) == []


def test_each_observation_discounts_the_older_ones() -> None:
    """window 10: after a change, the mean follows the new answers within a few dozen."""
    book = LearningBook(LearningConfig(window=10, half_life_hours=10_000))
    for i in range(100):
        book.rating("knowledge", "gpt", 0.9, T0 + i)
    assert row(book).rated_quality == pytest.approx(0.9)
    assert row(book).ratings == pytest.approx(10, rel=0.01)  # about `window` count
    for i in range(30):
        book.rating("knowledge", "gpt", 0.3, T0 + 100 + i)
    assert row(book).rated_quality == pytest.approx(0.3 + 0.6 * 0.9**30, abs=0.01)
    assert row(book).rated_quality < 0.35


def test_weights_halve_every_half_life() -> None:
    book = LearningBook(LearningConfig(window=10_000, half_life_hours=24))
    for _ in range(8):
        book.rating("knowledge", "gpt", 0.8, T0)
        attempt(book)
    assert row(book, T0).ratings == pytest.approx(8, rel=0.01)
    later = row(book, T0 + 48 * HOUR)
    assert later.ratings == pytest.approx(2, rel=0.01)
    assert later.attempts == pytest.approx(2, rel=0.01)
    assert later.rated_quality == pytest.approx(0.8)  # the mean is not decayed, its weight is


def test_dump_and_load_round_trip() -> None:
    book = LearningBook()
    for ms in (50, 500):
        attempt(book, latency_ms=ms)
    book.rating("knowledge", "gpt", 0.7, T0)
    book.rating("reasoning", "claude", 0.2, T0)
    data = json.loads(json.dumps(book.dump()))
    again = LearningBook()
    again.load(data)
    assert again.table(T0 + HOUR) == book.table(T0 + HOUR)


def test_a_bad_dump_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        LearningBook().load({"version": 9, "evidence": []})


def test_what_was_learned_survives_a_registry_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from registry_svc.evidence import AttemptReport, Evidence, RatingReport
    from registry_svc.store import LearningStore
    from uniwizard.config_types import Config

    config = Config(path="x.yaml", backends={})
    store = LearningStore(tmp_path / "learning.json")
    first = Evidence(config, store)
    first.attempt(AttemptReport("gpt", Outcome.SUCCESS, category="knowledge", latency_ms=80, at=T0))
    first.rating(RatingReport("gpt", "knowledge", 0.9, T0))
    first.save_if_changed()
    again = Evidence(config, LearningStore(tmp_path / "learning.json"))
    assert again.table(T0) == first.table(T0) != []
    (tmp_path / "learning.json").write_text("{not json")
    fresh = Evidence(config, LearningStore(tmp_path / "learning.json"))  # set aside, not fatal
    assert fresh.table(T0) == []
    assert list(tmp_path.glob("learning.json.corrupt-*"))
