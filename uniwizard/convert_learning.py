"""Protobuf <-> typed values for budgets, spending and learned statistics."""

from __future__ import annotations

from uniwizard.config_types import Budget
from uniwizard.types import BackendStats, BudgetState, BudgetStatus
from uniwizard.v1 import common_pb2

_BUDGET_PREFIX = "BUDGET_STATE_"


def budget_to_pb(b: Budget) -> common_pb2.Budget:
    return common_pb2.Budget(daily_usd=b.daily_usd, monthly_usd=b.monthly_usd, warn_at=b.warn_at)


def budget_from_pb(pb: common_pb2.Budget) -> Budget:
    return Budget(pb.daily_usd, pb.monthly_usd, pb.warn_at or Budget().warn_at)


def budget_state_to_pb(state: BudgetState) -> common_pb2.BudgetState.ValueType:
    return common_pb2.BudgetState.Value(_BUDGET_PREFIX + state.name)


def budget_state_from_pb(value: common_pb2.BudgetState.ValueType | int) -> BudgetState:
    if value == common_pb2.BUDGET_STATE_UNSPECIFIED:
        return BudgetState.NONE
    name = common_pb2.BudgetState.Name(value)  # type: ignore[arg-type]
    return BudgetState[name.removeprefix(_BUDGET_PREFIX)]


def budget_status_to_pb(s: BudgetStatus) -> common_pb2.BudgetStatus:
    return common_pb2.BudgetStatus(
        budget=budget_to_pb(s.budget),
        spent_today_usd=s.spent_today_usd,
        spent_month_usd=s.spent_month_usd,
        state=budget_state_to_pb(s.state),
        detail=s.detail,
        as_of=s.as_of,
    )


def budget_status_from_pb(pb: common_pb2.BudgetStatus) -> BudgetStatus:
    return BudgetStatus(
        budget=budget_from_pb(pb.budget),
        spent_today_usd=pb.spent_today_usd,
        spent_month_usd=pb.spent_month_usd,
        state=budget_state_from_pb(pb.state),
        detail=pb.detail,
        as_of=pb.as_of,
    )


def stats_to_pb(s: BackendStats) -> common_pb2.BackendStats:
    return common_pb2.BackendStats(
        category=s.category,
        backend=s.backend,
        rated_quality=s.rated_quality,
        ratings=s.ratings,
        attempts=s.attempts,
        success_rate=s.success_rate,
        outcomes=dict(s.outcomes),
        latency_p50_ms=s.latency_p50_ms,
        latency_p90_ms=s.latency_p90_ms,
        ttft_p50_ms=s.ttft_p50_ms,
        cost_per_answer_usd=s.cost_per_answer_usd,
        answers=s.answers,
        updated_at=s.updated_at,
    )


def stats_from_pb(pb: common_pb2.BackendStats) -> BackendStats:
    return BackendStats(
        category=pb.category,
        backend=pb.backend,
        rated_quality=pb.rated_quality,
        ratings=pb.ratings,
        attempts=pb.attempts,
        success_rate=pb.success_rate,
        outcomes=tuple(sorted(pb.outcomes.items())),
        latency_p50_ms=pb.latency_p50_ms,
        latency_p90_ms=pb.latency_p90_ms,
        ttft_p50_ms=pb.ttft_p50_ms,
        cost_per_answer_usd=pb.cost_per_answer_usd,
        answers=pb.answers,
        updated_at=pb.updated_at,
    )
