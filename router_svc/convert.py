"""Router results <-> protobuf."""

from __future__ import annotations

from router_svc.chain import Decision
from router_svc.dispatch import DispatchReport
from router_svc.health_view import HealthView
from router_svc.policy import Policy
from uniwizard.convert import (
    attempt_to_pb,
    backend_to_pb,
    health_to_pb,
    outcome_to_pb,
    tool_call_to_pb,
    usage_to_pb,
)
from uniwizard.types import BackendHealth, Outcome
from uniwizard.v1 import common_pb2, router_pb2


def decision_to_pb(d: Decision) -> router_pb2.RouteDecision:
    return router_pb2.RouteDecision(
        backend=d.backend or "",
        category=d.category,
        chain=list(d.chain),
        reasons=[router_pb2.Reason(rule=r.rule, evidence=r.evidence) for r in d.reasons],
        skipped=[
            router_pb2.Skip(backend=s.backend, reason=s.reason, detail=s.detail) for s in d.skipped
        ],
        estimated_input_tokens=d.estimated_input_tokens,
    )


def result_to_pb(report: DispatchReport, *, with_text: bool = True) -> router_pb2.DispatchResult:
    a = report.answer
    assert a is not None
    return router_pb2.DispatchResult(
        text=a.text if with_text else "",
        tool_calls=[tool_call_to_pb(c) for c in a.tool_calls] if with_text else [],
        backend=a.backend,
        model=a.response_model or a.model,
        finish_reason=a.finish_reason,
        usage=usage_to_pb(a.usage),
        cost_usd=report.cost_usd,
        attempts=[attempt_to_pb(x) for x in report.attempts],
        decision=decision_to_pb(report.decision),
        trace_id=report.trace_id,
        request_id=report.request_id,
        provider_finish_reason=a.provider_finish_reason,
    )


def failure_to_pb(report: DispatchReport) -> router_pb2.DispatchFailure:
    return router_pb2.DispatchFailure(
        outcome=outcome_to_pb(report.failure or Outcome.NO_BACKEND),
        message=report.message,
        attempts=[attempt_to_pb(x) for x in report.attempts],
        decision=decision_to_pb(report.decision),
        trace_id=report.trace_id,
        request_id=report.request_id,
    )


def catalog_to_pb(policy: Policy, view: HealthView) -> router_pb2.CatalogResponse:
    """The categories in policy order and the backends in configuration order, each with its
    health as this router's snapshot has it (unknown before the first word from the registry)."""
    return router_pb2.CatalogResponse(
        categories=[
            router_pb2.CategoryInfo(
                name=c.name,
                description=c.description,
                prefer=list(c.prefer),
                private_only=c.private_only,
            )
            for c in policy.categories
        ],
        default_category=policy.default,
        backends=[
            common_pb2.BackendStatus(
                backend=backend_to_pb(b),
                health=health_to_pb(view.health.get(key) or BackendHealth(key)),
            )
            for key, b in view.backends.items()
        ],
    )
