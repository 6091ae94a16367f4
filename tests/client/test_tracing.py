"""The client starts the trace: its span and the services' spans share one trace id."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.stack import running_stack
from uniwizard import telemetry
from uniwizard_client import AsyncBackendRouter, RouterError
from uniwizard_client.tracing import call_metadata, get_tracer


def test_the_current_trace_context_is_injected() -> None:
    provider = TracerProvider()
    with get_tracer(provider).start_as_current_span("evennia.command") as span:
        md = dict(call_metadata("tok"))
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert md["traceparent"].split("-")[1] == trace_id
    assert md["authorization"] == "Bearer tok"


async def test_client_span_is_the_root_of_the_services_trace(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry.use_exporter(exporter)  # the in-process services trace into the exporter too
    client_provider = TracerProvider()
    client_provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        async with running_stack(tmp_path) as stack:
            async with AsyncBackendRouter(stack.router.target, deadline=20,
                                          tracer_provider=client_provider) as router:
                result = await router.dispatch("Who was the first emperor of Rome?")
                try:
                    await router.call("nope", "Who was the first emperor of Rome?")
                except RouterError:
                    pass
    finally:
        telemetry.use_exporter(None)
    spans = exporter.get_finished_spans()
    think = [s for s in spans if s.name == "uniwizard.think"]
    assert len(think) == 2
    root = think[0]
    assert root.parent is None  # the client's span is the root
    trace_id = format(root.context.trace_id, "032x")
    assert result.trace_id == trace_id
    services = {s.resource.attributes.get("service.name") for s in spans
                if s.context.trace_id == root.context.trace_id and s is not root}
    assert {"router_svc", "caller_svc"} <= services
    assert root.attributes is not None and root.attributes["uniwizard.backend"] == "gpt"
    assert think[1].status.status_code.name == "ERROR"


async def test_the_stream_has_its_client_span_and_leaves_the_callers_context_alone(
    tmp_path: Path,
) -> None:
    from opentelemetry import trace

    from uniwizard_client import ThinkResult

    exporter = InMemorySpanExporter()
    telemetry.use_exporter(exporter)
    client_provider = TracerProvider()
    client_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = get_tracer(client_provider)
    try:
        async with running_stack(tmp_path) as stack:
            async with AsyncBackendRouter(stack.router.target, deadline=20,
                                          tracer_provider=client_provider) as router:
                with tracer.start_as_current_span("evennia.command") as command:
                    async for event in router.dispatch_stream("Who was the first emperor of Rome?"):
                        assert trace.get_current_span() is command  # not the stream's span
                        if isinstance(event, ThinkResult):
                            result = event
    finally:
        telemetry.use_exporter(None)
    spans = exporter.get_finished_spans()
    (stream,) = [s for s in spans if s.name == "uniwizard.think_stream"]
    assert stream.parent is not None and stream.parent.span_id == command.get_span_context().span_id
    assert result.trace_id == format(stream.context.trace_id, "032x")
    services = {s.resource.attributes.get("service.name") for s in spans
                if s.context.trace_id == stream.context.trace_id and s.parent is not None
                and s.parent.span_id == stream.context.span_id}
    assert "router_svc" in services  # the router's server span is a child of the client's
    assert stream.attributes is not None and stream.attributes["uniwizard.backend"] == "gpt"
