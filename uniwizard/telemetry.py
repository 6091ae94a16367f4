"""OpenTelemetry set-up shared by the services.

Tracing is on when the standard variables ask for an exporter (``OTEL_TRACES_EXPORTER`` of
``otlp`` or ``console``, or an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``) and
``OTEL_SDK_DISABLED`` is not true, or when a test installs an exporter with
:func:`use_exporter`. With none of those, no interceptor is installed and spans are no-ops: nothing
is exported and nothing slows down.

Each service gets its own ``TracerProvider`` with its ``service.name`` (several services share one
process in ``uniwizard serve --target all`` and in tests). The gRPC interceptors skip the health
service.

With tracing off, :func:`tracer` returns a tracer whose spans cost nothing: no span object, no
context attached (the API's no-op tracer still does both on every span), and the SDK is not even
imported.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_lock = threading.Lock()
_providers: dict[str, TracerProvider] = {}
_test_exporter: SpanExporter | None = None
TRACER_NAME = "uniwizard"


def _service_name_processor(name: str) -> Any:
    """A span processor that also puts ``service.name`` on each span: some backends (Arize
    Phoenix) drop resource attributes, and a span must still say which service made it."""
    from opentelemetry.sdk.trace import SpanProcessor

    class ServiceName(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            span.set_attribute("service.name", name)

    return ServiceName()


class _NoSpan:
    """What ``start_as_current_span`` gives with tracing off: the invalid span, nothing
    attached to the context, nothing recorded; one shared instance."""

    __slots__ = ()

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()


class OffTracer(trace.NoOpTracer):
    """The tracer when tracing is off (see the module doc)."""

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return NO_SPAN

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return trace.INVALID_SPAN


def use_exporter(exporter: SpanExporter | None) -> None:
    """Route every service's spans in this process to ``exporter`` (tests). None turns it off."""
    global _test_exporter
    with _lock:
        _test_exporter = exporter
        _providers.clear()


def signal_enabled(signal: str) -> bool:
    """Whether the standard OTEL_* variables ask for ``signal`` ("traces", "metrics") to be
    exported: ``OTEL_<SIGNAL>_EXPORTER`` of otlp/console, or an OTLP endpoint, unless the SDK is
    disabled or the exporter is "none"."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").lower()
    if exporter == "none":
        return False
    if exporter in ("otlp", "console"):
        return True
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )


def enabled() -> bool:
    return _test_exporter is not None or signal_enabled("traces")


def _env_exporter() -> SpanExporter:
    if os.environ.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def provider(service_name: str) -> TracerProvider | None:
    """This process's tracer provider for ``service_name``, or None when tracing is off."""
    if not enabled():
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    with _lock:
        existing = _providers.get(service_name)
        if existing is not None:
            return existing
        tp = TracerProvider(resource=Resource.create({"service.name": service_name}))
        tp.add_span_processor(_service_name_processor(service_name))
        if _test_exporter is not None:
            tp.add_span_processor(SimpleSpanProcessor(_test_exporter))
        else:
            tp.add_span_processor(BatchSpanProcessor(_env_exporter()))
        _providers[service_name] = tp
        return tp


def tracer(service_name: str) -> trace.Tracer:
    tp = provider(service_name)
    return tp.get_tracer(TRACER_NAME) if tp is not None else OffTracer()


def _untraced() -> Any:
    """Health checks and the long-lived WatchHealth stream are not request traces."""
    from opentelemetry.instrumentation.grpc import filters

    return filters.negate(
        filters.any_of(filters.health_check(), filters.method_name("WatchHealth"))
    )


def server_interceptors(service_name: str) -> list[Any]:
    tp = provider(service_name)
    if tp is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=tp, filter_=_untraced())]


def client_interceptors(service_name: str) -> list[Any]:
    tp = provider(service_name)
    if tp is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(tracer_provider=tp, filter_=_untraced()))


def current_trace_id() -> str:
    """The active span's trace id as 32 hex digits, or "" when there is none."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def shutdown() -> None:
    with _lock:
        providers = list(_providers.values())
    for tp in providers:
        tp.force_flush()


def trace_id_from_metadata(metadata: Any) -> str:
    """The trace id of a W3C ``traceparent`` in gRPC metadata, or "".

    With tracing off there is no SDK to extract context, but request correlation still follows
    the standard header: the router sends one and the caller records its trace id in the ledger.
    """
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str):
            parts = value.split("-")
            if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
                return parts[1]
    return ""


def traceparent_metadata(trace_id: str) -> tuple[tuple[str, str], ...]:
    """``traceparent`` metadata for a trace id when no SDK propagates context (tracing off)."""
    if enabled() or not trace_id:
        return ()
    return (("traceparent", f"00-{trace_id}-{os.urandom(8).hex()}-00"),)
