"""The official ``openai`` SDK as the client of the edge, on the real stack (simulator, registry,
caller, router): unary, streamed with usage, tools round trip, images, the three kinds of
``model``, ``/v1/models`` — with our JSON checked strictly against the SDK's own types."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from openai import BadRequestError, InternalServerError
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from edge_svc.config import EdgeConfig
from tests.edge.conftest import EdgeUnderTest, running_edge
from tests.edge.test_edge_translate import extras
from tests.stack import Links, Stack, running_stack
from uniwizard.types import HealthState

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROME = "Who was the first emperor of Rome?"  # knowledge → gpt first
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, stack_links: Links
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("edge"), links=stack_links) as s:
        yield s


@pytest.fixture
def edge(stack: Stack) -> EdgeUnderTest:
    """The stack's own edge, wired as ``uniwizard serve`` wires it."""
    return EdgeUnderTest(stack.edge, stack)


@pytest.fixture(autouse=True)
def _clean(stack: Stack) -> None:
    stack.sim.clear_faults()
    stack.sim.state.requests.clear()


def strict_completion(body: dict[str, Any]) -> ChatCompletion:
    parsed = ChatCompletion.model_validate(body, strict=True)
    allowed = {"uniwizard", "choices[].message.tool_calls[].provider_state"}
    assert extras(parsed) <= allowed, extras(parsed)
    return parsed


async def sse_events(edge: EdgeUnderTest, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """The raw ``data:`` payloads of a streamed completion, in order."""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", f"{edge.base_url}/chat/completions", json=body) as resp,
    ):
        raw = (await resp.aread()).decode()
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [e for e in raw.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events), raw
    return resp, [e.removeprefix("data: ") for e in events]


async def test_unary_completion_with_our_usage_headers_and_trace(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    client = edge.client()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": ROME},
        ],
        max_tokens=100,
        temperature=0.2,
        extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    body = json.loads(raw.http_response.text)
    completion = strict_completion(body)
    assert completion.choices[0].message.content
    assert "Simulated answer from gpt-4o" in completion.choices[0].message.content
    assert completion.model == "gpt-4o" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    ours = body["uniwizard"]
    h = raw.headers
    assert h["x-uniwizard-backend"] == ours["backend"] == "gpt"
    assert h["x-uniwizard-category"] == ours["category"] == "knowledge"
    assert completion.id == f"chatcmpl-{h['x-uniwizard-request-id']}"
    assert (
        float(h["x-uniwizard-cost-usd"]) == pytest.approx(ours["cost_usd"]) and ours["cost_usd"] > 0
    )
    # the caller's trace continues: the router answered on it, and the response says it
    assert h["traceparent"].split("-")[1] == ours["trace_id"] == trace_id
    # what reached the provider: the system prompt, the message, the limits; one ledger row
    sent = stack.sim.requests("gpt")[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert (
        sent["temperature"] == 0.2
        and sent.get("max_completion_tokens", sent.get("max_tokens")) == 100
    )
    rows = [
        r for r in await stack.caller.core.ledger.rows() if r["request_id"] == ours["request_id"]
    ]
    assert [r["backend"] for r in rows] == ["gpt"] and rows[0]["trace_id"] == trace_id


async def test_streamed_completion_with_usage_ends_with_done(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    client = edge.client()
    stream = await client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": ROME}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Simulated answer from gpt-4o" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1

    resp, events = await sse_events(
        edge,
        {
            "model": "auto",
            "messages": [{"role": "user", "content": ROME}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert events[-1] == "[DONE]"
    parsed = [ChatCompletionChunk.model_validate(json.loads(e), strict=True) for e in events[:-1]]
    assert all(extras(c) == set() for c in parsed[:-1]) and extras(parsed[-1]) == {"uniwizard"}
    assert all(c.usage is None for c in parsed[:-1]) and parsed[-1].usage is not None
    last = json.loads(events[-2])["uniwizard"]
    assert resp.headers["x-uniwizard-backend"] == last["backend"] == "gpt"
    assert resp.headers["x-uniwizard-request-id"] == last["request_id"]
    assert resp.headers["traceparent"].split("-")[1] == last["trace_id"]
    assert "x-uniwizard-cost-usd" not in resp.headers  # not known when the headers go out

    # without include_usage: no usage anywhere, our summary on the finish chunk
    _, events = await sse_events(
        edge, {"model": "auto", "messages": [{"role": "user", "content": ROME}], "stream": True}
    )
    assert events[-1] == "[DONE]"
    parsed = [ChatCompletionChunk.model_validate(json.loads(e), strict=True) for e in events[:-1]]
    assert all(c.usage is None and "usage" not in c.model_fields_set for c in parsed)
    assert parsed[-1].choices[0].finish_reason == "stop" and extras(parsed[-1]) == {"uniwizard"}


async def test_a_stream_that_falls_over_before_text_names_the_backend_that_answered(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    stack.sim.add_fault("gpt", {"kind": "refusal_text"}, times=1)
    resp, events = await sse_events(
        edge, {"model": "auto", "messages": [{"role": "user", "content": ROME}], "stream": True}
    )
    assert events[-1] == "[DONE]"
    ours = json.loads(events[-2])["uniwizard"]
    assert resp.headers["x-uniwizard-backend"] == ours["backend"] == "claude"
    assert [a["outcome"] for a in ours["attempts"]] == ["refusal", "success"]
    assert "Simulated answer from claude" in "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2]
    )


async def test_tools_round_trip(stack: Stack, edge: EdgeUnderTest) -> None:
    client = edge.client()
    messages: list[Any] = [
        {"role": "user", "content": "Use get_weather to tell me if it rains in Paris."}
    ]
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=messages,
        tools=[WEATHER],  # type: ignore[list-item]
    )
    first = strict_completion(json.loads(raw.http_response.text))
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "sim-city"}  # type: ignore[union-attr]

    # the assistant message back as the SDK gave it, then the tool's result (no tools offered
    # this time: the simulator calls a tool whenever the last user message names one)
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Light rain, 14 °C."})
    second = await client.chat.completions.create(
        model=raw.headers["x-uniwizard-backend"], messages=messages
    )
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    sent = stack.sim.requests(raw.headers["x-uniwizard-backend"])[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == call.id == sent[2]["tool_call_id"]
    assert sent[2]["content"] == "Light rain, 14 °C."

    # streamed: the call arrives as one tool_calls delta with its index
    stream = await client.chat.completions.create(
        model="auto",
        messages=messages[:1],
        tools=[WEATHER],
        stream=True,  # type: ignore[list-item]
    )
    chunks = [c async for c in stream]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name) for d in deltas] == [(0, "get_weather")]  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_an_image_as_a_data_url_goes_to_a_vision_backend(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    client = edge.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    assert raw.headers["x-uniwizard-category"] == "multimodal"
    backend = raw.headers["x-uniwizard-backend"]
    assert backend == "gemini"
    assert "I saw 1 attachment." in (raw.parse().choices[0].message.content or "")
    parts = stack.sim.requests("gemini")[-1]["body"]["contents"][0]["parts"]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    assert inline == [{"mimeType": "image/png", "data": PNG}]


async def test_an_image_url_is_fetched_only_from_an_allowed_host(stack: Stack) -> None:
    async def picture(request: web.Request) -> web.Response:
        return web.Response(body=base64.b64decode(PNG), content_type="image/png")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/cat.png", picture)
    app.router.add_get("/page", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        config = EdgeConfig(image_hosts=frozenset({"127.0.0.1"}), deadline_s=30)
        async with running_edge(stack, config=config) as fetching:
            client = fetching.client()

            def ask(url: str) -> Any:
                return client.chat.completions.with_raw_response.create(
                    model="auto",
                    messages=[
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "Describe it."},
                                {"type": "image_url", "image_url": {"url": url}},
                            ],
                        }
                    ],
                )

            raw = await ask(f"http://127.0.0.1:{port}/cat.png")
            assert raw.headers["x-uniwizard-backend"] == "gemini"
            parts = stack.sim.requests("gemini")[-1]["body"]["contents"][0]["parts"]
            assert [p["inlineData"] for p in parts if "inlineData" in p] == [
                {"mimeType": "image/png", "data": PNG}
            ]
            for url, words in (
                (f"http://127.0.0.1:{port}/page", "text/html, not an image"),
                (f"http://127.0.0.1:{port}/missing.png", "HTTP 404"),
                (f"http://localhost:{port}/cat.png", "host 'localhost' is not one"),
            ):
                with pytest.raises(Exception) as err:
                    await ask(url)
                assert err.value.status_code == 400, url  # type: ignore[attr-defined]
                assert words in err.value.body["message"]  # type: ignore[attr-defined]
                assert err.value.body["param"] == "messages[0].content[1].image_url.url"  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


class Trip(BaseModel):
    city: str
    days: int
    stops: list[str]
    mode: Literal["train", "bus"]
    note: str | None = None


async def test_structured_output_reaches_the_provider_and_parses(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    client = edge.client()
    # The SDK's parse(): a json_schema made from the model, strict; the answer is a Trip.
    done = await client.chat.completions.parse(
        model="auto", messages=[{"role": "user", "content": ROME}], response_format=Trip
    )
    trip = done.choices[0].message.parsed
    assert isinstance(trip, Trip) and trip.mode in ("train", "bus")
    sent = stack.sim.requests("gpt")[-1]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Trip"
    assert sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["required"] == ["city", "days", "stops", "mode", "note"]
    # json_object, streamed: the chunks join to one JSON object.
    stream = await client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": ROME}],
        response_format={"type": "json_object"},
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert isinstance(json.loads(text), dict)


async def test_structured_output_goes_only_to_backends_that_can_return_it(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    """claude leads the reasoning chain but cannot (output_formats: [] for claude-sonnet-4 in
    configs/backends.yaml): the router skips it; pinned to it, the request is a 400."""
    client = edge.client()
    review = "Review this pull request diff for race conditions"
    schema = {"name": "review", "schema": Trip.model_json_schema()}
    fmt: Any = {"type": "json_schema", "json_schema": schema}
    plain = await client.chat.completions.with_raw_response.create(
        model="reasoning", messages=[{"role": "user", "content": review}]
    )
    assert plain.headers["x-uniwizard-backend"] == "claude"
    raw = await client.chat.completions.with_raw_response.create(
        model="reasoning", messages=[{"role": "user", "content": review}], response_format=fmt
    )
    answered = raw.headers["x-uniwizard-backend"]
    assert answered != "claude" and answered in ("gpt", "gemini", "grok")
    Trip.model_validate_json(json.loads(raw.http_response.text)["choices"][0]["message"]["content"])
    sent = len(stack.sim.requests("claude"))
    with pytest.raises(BadRequestError) as err:
        await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": review}], response_format=fmt
        )
    body: Any = err.value.body
    assert body["code"] == "bad_request"
    assert "backend claude cannot return json_schema output" in body["message"]
    assert len(stack.sim.requests("claude")) == sent  # nothing sent


async def test_model_is_auto_a_category_or_a_pinned_backend(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    client = edge.client()
    question = [{"role": "user", "content": ROME}]
    raw = await client.chat.completions.with_raw_response.create(
        model="reasoning",
        messages=question,  # type: ignore[arg-type]
    )
    assert (raw.headers["x-uniwizard-category"], raw.headers["x-uniwizard-backend"]) == (
        "reasoning",
        "claude",
    )
    raw = await client.chat.completions.with_raw_response.create(model="grok", messages=question)  # type: ignore[arg-type]
    assert raw.headers["x-uniwizard-backend"] == "grok" and raw.parse().model == "grok-3-mini"

    # a category falls back along its chain; a pinned backend does not
    stack.sim.add_fault("claude", {"kind": "status", "status": 503})
    raw = await client.chat.completions.with_raw_response.create(
        model="reasoning",
        messages=question,  # type: ignore[arg-type]
    )
    attempts = json.loads(raw.http_response.text)["uniwizard"]["attempts"]
    assert [a["outcome"] for a in attempts] == ["overloaded", "success"]
    assert raw.headers["x-uniwizard-backend"] == "gpt"
    with pytest.raises(InternalServerError) as err:
        await client.chat.completions.create(model="claude", messages=question)  # type: ignore[arg-type]
    assert err.value.status_code == 502
    body: Any = err.value.body
    assert body["code"] == "overloaded"
    assert [a["backend"] for a in body["attempts"]] == ["claude"]


async def test_the_model_list_has_auto_the_categories_and_the_backends_with_health(
    stack: Stack, edge: EdgeUnderTest
) -> None:
    await stack.set_enabled("kimi", False, "maintenance")
    try:
        await stack.wait_router(
            lambda v: (
                v.health.get("kimi") is not None and v.health["kimi"].state is HealthState.DISABLED
            )
        )
        client = edge.client()
        page = await client.models.list()
        ids = [m.id for m in page.data]
        categories = ["multimodal", "private", "long_context", "simple", "reasoning"]
        assert ids[: 1 + len(categories)] == ["auto", *categories]
        assert ids[-len(stack.config.backends) :] == list(stack.config.backends)
        async with httpx.AsyncClient() as http:
            listed = (await http.get(f"{edge.base_url}/models")).json()
        assert listed["object"] == "list"
        for entry in listed["data"]:
            Model.model_validate(entry, strict=True)
        kimi = next(e for e in listed["data"] if e["id"] == "kimi")
        assert kimi["owned_by"] == "openai_compatible"
        assert kimi["uniwizard"]["state"] == "disabled" and kimi["uniwizard"]["model"] == "kimi-2.5"
        reasoning = await client.models.retrieve("reasoning")
        assert reasoning.id == "reasoning"
        assert (reasoning.model_extra or {})["uniwizard"]["kind"] == "category"
        with pytest.raises(Exception) as err:
            await client.models.retrieve("gpt-5")
        assert err.value.status_code == 404  # type: ignore[attr-defined]
        # a disabled backend asked for by name: 503, no backend to take it
        with pytest.raises(Exception) as err:
            await client.chat.completions.create(
                model="kimi", messages=[{"role": "user", "content": ROME}]
            )
        assert err.value.status_code == 503  # type: ignore[attr-defined]
        assert err.value.body["code"] == "no_backend"  # type: ignore[attr-defined]
        assert "disabled" in err.value.body["message"]  # type: ignore[attr-defined]
    finally:
        await stack.set_enabled("kimi", True)
