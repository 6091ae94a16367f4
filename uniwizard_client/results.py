"""Typed results of the router's RPCs (protobuf stays inside the client)."""

from __future__ import annotations

from dataclasses import dataclass

from uniwizard.convert import outcome_from_pb
from uniwizard.v1 import common_pb2, router_pb2


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str  # the category or constraint that fired
    evidence: str  # what it fired on, in plain words


@dataclass(frozen=True, slots=True)
class Skipped:
    backend: str
    reason: str  # disabled, down, cooling_down, context_too_small, modality, not_private, ...
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """Which backend would take a task, and why."""

    backend: str | None  # None when no backend is eligible
    category: str
    chain: tuple[str, ...]
    reasons: tuple[Reason, ...]
    skipped: tuple[Skipped, ...]
    estimated_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    backend: str
    outcome: str  # an outcome class: success, rate_limited, refusal, ...
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    model: str = ""
    error: str = ""  # never prompt text or secrets


@dataclass(frozen=True, slots=True)
class ThinkResult:
    """An answered task: the text, who answered, and every attempt it took."""

    text: str
    backend: str
    model: str
    category: str
    attempts: tuple[AttemptInfo, ...]
    cost_usd: float  # all attempts together
    trace_id: str
    request_id: str = ""
    finish_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0


def route_info(d: router_pb2.RouteDecision) -> RouteInfo:
    return RouteInfo(
        backend=d.backend or None,
        category=d.category,
        chain=tuple(d.chain),
        reasons=tuple(Reason(r.rule, r.evidence) for r in d.reasons),
        skipped=tuple(Skipped(s.backend, s.reason, s.detail) for s in d.skipped),
        estimated_input_tokens=d.estimated_input_tokens,
    )


def attempt_info(a: common_pb2.Attempt) -> AttemptInfo:
    outcome = outcome_from_pb(a.outcome)
    return AttemptInfo(
        backend=a.backend,
        outcome=outcome.value if outcome else "unknown",
        latency_ms=a.latency_ms,
        input_tokens=a.usage.input_tokens,
        output_tokens=a.usage.output_tokens,
        cost_usd=a.cost_usd,
        model=a.model,
        error=a.error_message,
    )


def think_result(r: router_pb2.DispatchResult) -> ThinkResult:
    return ThinkResult(
        text=r.text,
        backend=r.backend,
        model=r.model,
        category=r.decision.category,
        attempts=tuple(attempt_info(a) for a in r.attempts),
        cost_usd=r.cost_usd,
        trace_id=r.trace_id,
        request_id=r.request_id,
        finish_reason=r.finish_reason,
        input_tokens=r.usage.input_tokens,
        output_tokens=r.usage.output_tokens,
    )
