"""Client spans and W3C trace-context propagation into gRPC metadata.

With no OpenTelemetry SDK configured the tracer is a no-op: spans are non-recording and nothing
is injected, so this costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

TRACER_NAME = "uniwizard_client"
Metadata = tuple[tuple[str, str], ...]


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME, tracer_provider=provider)


def call_metadata(token: str | None, context: Context | None = None) -> Metadata:
    """The metadata for one call: the trace context (``context``, else the current one) and,
    if given, the bearer token."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    pairs = [(k.lower(), v) for k, v in carrier.items()]
    if token:
        pairs.append(("authorization", f"Bearer {token}"))
    return tuple(pairs)


@contextmanager
def client_span(
    tracer: trace.Tracer, name: str, target: str, *, current: bool = True
) -> Iterator[trace.Span]:
    """A client span around one call; failures mark it as an error (never with prompt text).

    ``current=False`` leaves the current context alone: for generators, which yield to their
    consumer with the span open (a span made current there would leak into the consumer's code
    between events). Inject it into the call's metadata with ``trace.set_span_in_context``.
    """
    span = tracer.start_span(name, kind=trace.SpanKind.CLIENT, record_exception=False)
    if span.is_recording():
        span.set_attribute("server.address", target)
    try:
        if current:
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                yield span
        else:
            yield span
    except Exception as exc:
        if span.is_recording():
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            outcome = getattr(exc, "outcome", None)
            if outcome:
                span.set_attribute("uniwizard.outcome", outcome)
        raise
    finally:
        span.end()


def current_trace_id(span: trace.Span) -> str:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
