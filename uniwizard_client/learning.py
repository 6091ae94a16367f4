"""Typed results for routing v2: ratings, what the registry learned, and budgets."""

from __future__ import annotations

from dataclasses import dataclass

from uniwizard.convert_learning import budget_state_from_pb
from uniwizard.ratings import rating
from uniwizard.v1 import common_pb2, registry_pb2


@dataclass(frozen=True, slots=True)
class Rated:
    """A stored rating and the answer it belongs to."""

    request_id: str
    trace_id: str
    backend: str  # the backend whose answer was rated
    category: str
    score: float  # [0, 1]
    label: str = ""


@dataclass(frozen=True, slots=True)
class StatsRow:
    """What the registry learned about one backend on one category (decayed counts)."""

    category: str
    backend: str
    rated_quality: float
    ratings: float
    attempts: float
    success_rate: float
    outcomes: tuple[tuple[str, float], ...]
    latency_p50_ms: float
    latency_p90_ms: float
    ttft_p50_ms: float
    cost_per_answer_usd: float
    answers: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class StatsTable:
    rows: tuple[StatsRow, ...]
    window: float  # observations that count (decay per observation)
    half_life_hours: float  # decay over time


@dataclass(frozen=True, slots=True)
class BudgetInfo:
    """Spending against a budget as the ledger had it (``state``: none, ok, warning, over)."""

    state: str = "none"
    detail: str = ""
    daily_usd: float = 0.0
    monthly_usd: float = 0.0
    warn_at: float = 0.9
    spent_today_usd: float = 0.0
    spent_month_usd: float = 0.0
    as_of: float = 0.0


def rate_request(
    request_id: str, score: float, *, label: str, trace_id: str, five_point: bool
) -> common_pb2.RateRequest:
    """A checked rating request (raises uniwizard.ratings.InvalidRating naming the problem)."""
    checked = rating(request_id, trace_id, score, label, five_point=five_point)
    return common_pb2.RateRequest(
        request_id=checked.request_id,
        trace_id=checked.trace_id,
        score=checked.score,
        scale=common_pb2.RATING_SCALE_UNIT,
        label=checked.label,
    )


def rated(pb: common_pb2.RateResponse) -> Rated:
    return Rated(pb.request_id, pb.trace_id, pb.backend, pb.category, pb.score, pb.label)


def stats_table(pb: registry_pb2.StatsResponse) -> StatsTable:
    rows = tuple(
        StatsRow(
            category=s.category,
            backend=s.backend,
            rated_quality=s.rated_quality,
            ratings=s.ratings,
            attempts=s.attempts,
            success_rate=s.success_rate,
            outcomes=tuple(sorted(s.outcomes.items())),
            latency_p50_ms=s.latency_p50_ms,
            latency_p90_ms=s.latency_p90_ms,
            ttft_p50_ms=s.ttft_p50_ms,
            cost_per_answer_usd=s.cost_per_answer_usd,
            answers=s.answers,
            updated_at=s.updated_at,
        )
        for s in pb.stats
    )
    return StatsTable(rows, pb.window, pb.half_life_hours)


def budget_info(pb: common_pb2.BudgetStatus) -> BudgetInfo:
    return BudgetInfo(
        state=budget_state_from_pb(pb.state).value,
        detail=pb.detail,
        daily_usd=pb.budget.daily_usd,
        monthly_usd=pb.budget.monthly_usd,
        warn_at=pb.budget.warn_at,
        spent_today_usd=pb.spent_today_usd,
        spent_month_usd=pb.spent_month_usd,
        as_of=pb.as_of,
    )
