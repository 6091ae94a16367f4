"""A chat completion through the edge is one trace from the edge's server span to the provider
call (continuing the client's ``traceparent``), and no prompt, token or identity reaches a span
or a log of any service on the way."""

from __future__ import annotations

import logging
from pathlib import Path

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.edge.conftest import running_edge
from tests.stack import SIM_KEY, running_stack

TOKEN = "edge-trace-token-0123456789"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


async def test_one_request_is_one_trace_with_nothing_secret_in_it(
    tmp_path: Path, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Zanzibar marmalade question number 7731"
    caplog.set_level(logging.DEBUG)
    async with running_stack(tmp_path) as stack, running_edge(stack, token=TOKEN) as edge:
        client = edge.client()
        spans.clear()
        raw = await client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[
                {"role": "system", "content": "Grand Timmy says hello."},
                {"role": "user", "content": f"Who was Timmy? {secret}"},
            ],
            extra_headers={"traceparent": f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"},
        )
        assert raw.headers["traceparent"].split("-")[1] == CLIENT_TRACE
        stack.sim.add_fault("gpt", {"kind": "status", "status": 500})
        stream = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": secret}], stream=True
        )
        assert [c async for c in stream]
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": secret}], temperature=9
            )
        with pytest.raises(openai.AuthenticationError):
            await edge.client(api_key=secret).models.list()

    finished = spans.get_finished_spans()
    first = [s for s in finished if format(s.context.trace_id, "032x") == CLIENT_TRACE]
    services = {str(s.resource.attributes["service.name"]) for s in first}
    assert {"edge_svc", "router_svc", "caller_svc"} <= services
    (server,) = [s for s in first if s.name == "POST /v1/chat/completions"]
    assert server.kind.name == "SERVER" and server.parent is not None
    assert format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert (server.attributes or {})["http.response.status_code"] == 200
    assert any(s.name == "chat gpt-4o" for s in first)  # down to the provider call

    texts = [r.getMessage() for r in caplog.records]
    for s in finished:
        texts.append(s.name)
        texts.extend(f"{k}={v}" for k, v in (s.attributes or {}).items())
        for e in s.events:
            texts.extend(f"{k}={v}" for k, v in (e.attributes or {}).items())
    assert len(texts) > 20
    leaks = [
        (w, t) for t in texts for w in (secret, TOKEN, SIM_KEY, "Timmy") if w.lower() in t.lower()
    ]
    assert leaks == []
