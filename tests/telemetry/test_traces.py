"""One think through the three services is one trace, with GenAI attributes and its cost."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.stack import SIM_KEY, running_stack, task

ROME = "Who was the first emperor of Rome?"


def service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def ledger_rows(tmp: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(tmp / "ledger.db")
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT * FROM attempts ORDER BY id"))
    finally:
        db.close()


async def test_one_think_is_one_trace_across_router_and_caller(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with running_stack(tmp_path) as stack:
        spans.clear()
        result = await stack.dispatch(task(ROME))
    finished = [s for s in spans.get_finished_spans() if "ReportOutcomes" not in s.name]
    trace_ids = {s.context.trace_id for s in finished}
    assert len(trace_ids) == 1, [(s.name, service(s)) for s in finished]
    assert format(trace_ids.pop(), "032x") == result.trace_id
    by_name = {(s.name, service(s)): s for s in finished}
    # The test's own client starts the trace (W3C context accepted from clients). The caller's
    # batched outcome reports to the registry are traces of their own.
    assert {service(s) for s in finished} == {"tests", "router_svc", "caller_svc"}

    server = by_name["/uniwizard.v1.Router/Dispatch", "router_svc"]
    dispatch = by_name["dispatch", "router_svc"]
    attempt = by_name["attempt gpt", "router_svc"]
    caller_client = by_name["/uniwizard.v1.Caller/Call", "router_svc"]
    caller_server = by_name["/uniwizard.v1.Caller/Call", "caller_svc"]
    provider = by_name["chat gpt-4o", "caller_svc"]
    ids = {s.context.span_id: s for s in finished}

    def parent(s: ReadableSpan) -> ReadableSpan:
        assert s.parent is not None
        return ids[s.parent.span_id]

    client = by_name["/uniwizard.v1.Router/Dispatch", "tests"]
    assert client.parent is None
    assert parent(server) is client
    assert parent(dispatch) is server
    assert parent(attempt) is dispatch
    assert parent(caller_client) is attempt
    assert parent(caller_server) is caller_client  # W3C context crossed the process boundary
    assert parent(provider) is caller_server

    attrs = provider.attributes or {}
    assert provider.kind.name == "CLIENT"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == "gpt-4o"
    assert attrs["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == result.usage.output_tokens
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)
    assert attrs["gen_ai.usage.cost.currency"] == "USD"
    assert attrs["gen_ai.usage.cost.source"] == "provider"
    rows = ledger_rows(tmp_path)
    assert len(rows) == 1
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(rows[0]["cost_usd"])
    assert rows[0]["trace_id"] == result.trace_id

    route = dispatch.attributes or {}
    assert route["uniwizard.route.category"] == "knowledge"
    assert route["uniwizard.route.chain"][0] == "gpt"
    assert route["uniwizard.route.reasons"]


async def test_a_fallback_shows_one_attempt_span_per_backend(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 503})
        spans.clear()
        result = await stack.dispatch(task(ROME))
    attempts = [s for s in spans.get_finished_spans() if s.name.startswith("attempt ")]
    assert [s.name for s in attempts] == [f"attempt {a.backend}" for a in result.attempts]
    assert len(attempts) == 2
    failed = attempts[0].attributes or {}
    assert failed["error.type"] == "overloaded"
    providers = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert [(s.attributes or {}).get("error.type") for s in providers] == ["overloaded", None]


async def test_no_prompt_key_or_identity_in_any_span_or_log(
    tmp_path: Path, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    secret_prompt = "Zanzibar marmalade question number 7731"
    caplog.set_level(logging.DEBUG)
    async with running_stack(tmp_path, probes=True) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 500}, times=1)
        stack.sim.add_fault("claude", {"kind": "status", "status": 401}, times=1)
        await stack.dispatch(task(f"Who was Timmy? {secret_prompt}", system="Grand Timmy says"))
        await stack.dispatch(task(f"Analyze this: {secret_prompt}"))
        await stack.registry.prober.probe("gpt")
    # ("Uniwizard" is also the project's own name, in every gRPC method path: not checked.)
    forbidden = [secret_prompt, SIM_KEY, "Timmy"]
    texts = [r.getMessage() for r in caplog.records]
    for s in spans.get_finished_spans():
        texts.append(s.name)
        texts.extend(f"{k}={v}" for k, v in (s.attributes or {}).items())
        for e in s.events:
            texts.extend(f"{k}={v}" for k, v in (e.attributes or {}).items())
    assert len(texts) > 20
    leaks = [(word, t) for t in texts for word in forbidden if word.lower() in t.lower()]
    assert leaks == []


def test_the_usage_breakdown_goes_on_the_span_under_genai_names() -> None:
    """Cache reads and writes and reasoning tokens, as the GenAI conventions name them; each is
    a part of input_tokens / output_tokens, which hold all input and all output."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from caller_svc.record import _annotate
    from uniwizard.types import CallResult, Outcome, Usage

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    usage = Usage(1532, 33, cached_input_tokens=1111, cache_write_tokens=418, reasoning_tokens=7)
    with provider.get_tracer("t").start_as_current_span("chat") as span:
        _annotate(span, CallResult("claude", "m", Outcome.SUCCESS, usage=usage, cost_usd=0.0024))
    attrs = dict(exporter.get_finished_spans()[0].attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == 1532
    assert attrs["gen_ai.usage.output_tokens"] == 33
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1111
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 418
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 7
