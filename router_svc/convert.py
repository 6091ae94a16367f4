"""Router results <-> protobuf."""

from __future__ import annotations

from router_svc.chain import Decision
from router_svc.dispatch import DispatchReport
from uniwizard.convert import attempt_to_pb, outcome_to_pb, tool_call_to_pb, usage_to_pb
from uniwizard.types import Outcome
from uniwizard.v1 import router_pb2


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
