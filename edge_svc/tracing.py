"""One request's trace context: continued from the client's ``traceparent`` when it sends one,
else a new trace; recorded as a server span when tracing is on. Either way the context is
current while the router is called (so the router's spans, or its trace id when tracing is off,
follow it) and the response says it in ``traceparent``. No request content goes into spans."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from uniwizard import telemetry

SERVICE_NAME = "edge_svc"


def traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def edge_tracer() -> trace.Tracer:
    """The edge's tracer (a no-op one when tracing is off): taken once, at construction."""
    return telemetry.tracer(SERVICE_NAME)


@contextmanager
def request_span(
    tracer: trace.Tracer, headers: Mapping[str, str], name: str
) -> Iterator[trace.Span]:
    """The request's span, current inside the block."""
    parent = propagate.extract(headers)
    if isinstance(tracer, trace.NoOpTracer):
        span: trace.Span = NonRecordingSpan(_new_context(trace.get_current_span(parent)))
    else:
        span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
    with trace.use_span(span, end_on_exit=True, record_exception=False):
        yield span


def _new_context(parent: trace.Span) -> SpanContext:
    """A span context of our own: the parent's trace (and sampling flag), else a new trace."""
    rng = random.getrandbits
    p = parent.get_span_context()
    if p.is_valid:
        return SpanContext(p.trace_id, rng(64) or 1, is_remote=False, trace_flags=p.trace_flags)
    return SpanContext(rng(128) or 1, rng(64) or 1, is_remote=False, trace_flags=TraceFlags(0))
