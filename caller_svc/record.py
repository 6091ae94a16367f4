"""Everything that is kept of an attempt: its span, its metrics, its ledger row, and its outcome
report to the registry. No prompt or answer text goes into any of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from caller_svc.ledger import Ledger, LedgerRow
from uniwizard import telemetry
from uniwizard.config_types import BackendConfig
from uniwizard.metrics import CallMetrics
from uniwizard.types import CallResult, Outcome

# gen_ai.provider.name values from the GenAI semantic conventions.
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "openai_compatible": "openai",
}


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who the attempt belongs to (from the router) and how long it may take."""

    request_id: str = ""
    category: str = ""
    attempt: int = 1
    trace_id: str = ""
    budget_s: float | None = None  # remaining deadline of the gRPC call, if any


class OutcomeReporter(Protocol):
    """Where passive outcomes, ratings and spending go (the registry); never blocks or fails."""

    def report(self, result: CallResult, category: str) -> None: ...

    def rated(self, backend: str, category: str, score: float) -> None: ...

    def spent(self, as_of: float, spend: dict[str, tuple[float, float]]) -> None: ...


class Recorder:
    def __init__(
        self,
        ledger: Ledger,
        reporter: OutcomeReporter | None = None,
        on_spend: Callable[[str, float], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.reporter = reporter
        self.on_spend = on_spend  # an attempt cost money (backend, USD): spending moved
        self.tracer = telemetry.tracer("caller_svc")
        self.traced = not isinstance(self.tracer, telemetry.OffTracer)
        self.metrics = CallMetrics("caller_svc")

    def span(self, b: BackendConfig, *, stream: bool) -> AbstractContextManager[object]:
        """The provider call as a CLIENT span named ``{operation} {model}`` (GenAI conventions)."""
        if not self.traced:
            return telemetry.NO_SPAN  # nothing, at no cost
        return self.tracer.start_as_current_span(
            f"chat {b.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER_NAMES.get(b.provider, b.provider),
                "gen_ai.request.model": b.model,
                "uniwizard.backend": b.key,
                "uniwizard.stream": stream,
            },
        )

    async def begin(self, b: BackendConfig, ctx: CallContext) -> int:
        """The ledger row of an attempt about to leave for the provider (``in_flight``):
        committed on return. Raises LedgerUnavailable when it cannot be."""
        blank = CallResult(b.key, b.model, Outcome.SUCCESS)  # no outcome, tokens or cost yet
        return await self.ledger.begin(_row(blank, ctx))

    def record(
        self, b: BackendConfig, result: CallResult, ctx: CallContext, row_id: int = 0
    ) -> Awaitable[bool]:
        """Keep the attempt: span attributes, metrics, the ledger row (completing the row of a
        sent attempt, else a new one with sent = 0), and the outcome report. Returns when the
        row is committed (queued either way; awaiting it is what makes an answer wait for its
        row, see caller_svc/ledger.py)."""
        _annotate(trace.get_current_span(), result)
        self._measure(b, result)
        # An identity rejection says nothing about the provider, which never saw the request.
        if self.reporter is not None and result.outcome is not Outcome.IDENTITY_LEAK:
            self.reporter.report(result, ctx.category)
        row = _row(result, ctx, sent=bool(row_id))
        committed = self.ledger.finish(row_id, row) if row_id else self.ledger.record(row)
        if result.cost_usd > 0 and self.on_spend is not None:
            self.on_spend(result.backend, result.cost_usd)
        return committed

    def _measure(self, b: BackendConfig, result: CallResult) -> None:
        if not self.metrics.on:
            return
        failed = result.outcome is not Outcome.SUCCESS
        self.metrics.record(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER_NAMES.get(b.provider, b.provider),
                "gen_ai.request.model": result.model,
                "uniwizard.backend": result.backend,
            },
            result.usage.input_tokens,
            result.usage.output_tokens,
            result.latency_ms / 1000.0,
            result.cost_usd,
            result.cost_source,
            result.outcome.value if failed else None,
        )


def _row(result: CallResult, ctx: CallContext, *, sent: bool = True) -> LedgerRow:
    return LedgerRow(
        backend=result.backend,
        model=result.model,
        outcome=result.outcome.value,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cached_input_tokens=result.usage.cached_input_tokens,
        cache_write_tokens=result.usage.cache_write_tokens,
        reasoning_tokens=result.usage.reasoning_tokens,
        cost_usd=result.cost_usd,
        cost_source=result.cost_source,
        latency_ms=result.latency_ms,
        trace_id=ctx.trace_id,
        request_id=ctx.request_id,
        category=ctx.category,
        attempt=ctx.attempt,
        http_status=result.http_status,
        identity_redactions=result.scrubbed,
        sent=sent,
    )


def _annotate(span: trace.Span, result: CallResult) -> None:
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.response.model", result.response_model or result.model)
    usage = result.usage
    # GenAI conventions: input_tokens includes the cache reads and writes, output_tokens the
    # reasoning tokens ("SHOULD be included"); uniwizard.types.Usage counts the same way.
    span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    if usage.cached_input_tokens:
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_input_tokens)
    if usage.cache_write_tokens:
        span.set_attribute("gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens)
    if usage.reasoning_tokens:
        span.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
    if result.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])
    span.set_attribute("gen_ai.usage.cost.amount", result.cost_usd)
    span.set_attribute("gen_ai.usage.cost.currency", "USD")
    span.set_attribute("gen_ai.usage.cost.source", result.cost_source)
    span.set_attribute("uniwizard.outcome", result.outcome.value)
    if result.http_status:
        span.set_attribute("http.response.status_code", result.http_status)
    if result.scrubbed:
        span.set_attribute("uniwizard.identity.redactions", result.scrubbed)
    if result.outcome is not Outcome.SUCCESS:
        span.set_attribute("error.type", result.outcome.value)
        span.set_status(Status(StatusCode.ERROR, result.outcome.value))
