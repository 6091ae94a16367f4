"""caller_svc speaks every configured backend's own wire format: one real Call / CallStream per
backend through the running service to the simulator, which validates the request strictly.

Every check reads both sides: what came back over gRPC (text, usage, cost, tool calls) and what
the simulator recorded (path, status, parsed JSON body)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.stack import Links, Stack, running_stack
from uniwizard.convert import outcome_from_pb, request_to_pb
from uniwizard.types import Attachment, BlindRequest, Message, Outcome, Role, ToolDef
from uniwizard.v1 import caller_pb2
from uniwizard_sim.textgen import count_tokens

pytestmark = pytest.mark.asyncio(loop_scope="module")

BACKENDS = ("local", "claude", "kimi", "gpt", "gemini", "grok")
SYSTEM = "You answer history questions in one short paragraph."
# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 28


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, stack_links: Links
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("backends"), links=stack_links) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(stack: Stack) -> None:
    stack.sim.clear_faults()
    stack.sim.state.requests.clear()


def expected_path(stack: Stack, key: str, *, stream: bool = False) -> str:
    b = stack.config.backends[key]
    if b.provider == "anthropic":
        return f"/{key}/v1/messages"
    if b.provider == "gemini":
        op = "streamGenerateContent" if stream else "generateContent"
        return f"/{key}/v1beta/models/{b.model}:{op}"
    return f"/{key}/v1/chat/completions"


def multi_turn(last: str = "And who came after him?") -> BlindRequest:
    return BlindRequest(
        messages=(
            Message(Role.USER, "Who was the first emperor of Rome?"),
            Message(Role.ASSISTANT, "Augustus, from 27 BC."),
            Message(Role.USER, last),
        ),
        system_prompt=SYSTEM,
    )


def call_request(key: str, request: BlindRequest) -> caller_pb2.CallRequest:
    return caller_pb2.CallRequest(backend=key, request=request_to_pb(request), request_id="t")


async def call(stack: Stack, key: str, request: BlindRequest) -> caller_pb2.CallResult:
    return await stack.caller_stub.Call(call_request(key, request), timeout=20)


async def call_stream(
    stack: Stack, key: str, request: BlindRequest
) -> tuple[list[caller_pb2.CallEvent], caller_pb2.CallResult]:
    events = [e async for e in stack.caller_stub.CallStream(call_request(key, request), timeout=20)]
    assert events, "a stream must end with a result"
    assert [e.WhichOneof("event") for e in events].count("result") == 1
    assert events[-1].WhichOneof("event") == "result"
    return events[:-1], events[-1].result


def only_record(stack: Stack, key: str) -> dict[str, Any]:
    records = stack.sim.requests(key)
    assert len(records) == 1, records
    assert stack.sim.requests() == records  # nothing went to any other target
    return records[0]


def assert_priced(stack: Stack, key: str, result: caller_pb2.CallResult) -> None:
    b = stack.config.backends[key]
    u = result.usage
    assert u.input_tokens > 0 and u.output_tokens > 0
    assert not u.estimated and result.cost_source == "provider"
    expected = (
        u.input_tokens * b.cost_per_1k_input / 1000 + u.output_tokens * b.cost_per_1k_output / 1000
    )
    assert result.cost_usd == pytest.approx(expected, rel=1e-9, abs=1e-15)


def system_seen(provider: str, body: dict[str, Any]) -> str:
    if provider == "anthropic":
        s = body["system"]
        return s if isinstance(s, str) else "".join(b["text"] for b in s)
    if provider == "gemini":
        return "".join(p["text"] for p in body["systemInstruction"]["parts"])
    first = body["messages"][0]
    assert first["role"] in ("system", "developer")
    c = first["content"]
    return c if isinstance(c, str) else "".join(p["text"] for p in c)


def turns_seen(provider: str, body: dict[str, Any]) -> list[str]:
    """The roles of the conversation turns (system excluded), in the provider's vocabulary."""
    if provider == "gemini":
        return [c["role"] for c in body["contents"]]
    return [m["role"] for m in body["messages"] if m["role"] not in ("system", "developer")]


@pytest.mark.parametrize("key", BACKENDS)
async def test_unary_call_reaches_the_simulator_and_is_priced(stack: Stack, key: str) -> None:
    req = multi_turn()
    result = await call(stack, key, req)
    assert outcome_from_pb(result.outcome) is Outcome.SUCCESS, result.error_message
    b = stack.config.backends[key]
    assert result.backend == key and result.model == b.model
    assert result.text.startswith(f"Simulated answer from {b.model}")
    assert result.http_status == 200 and result.finish_reason == "stop"
    assert_priced(stack, key, result)
    # The simulator counts words + punctuation of every text piece (system prompt + messages).
    pieces = [SYSTEM, *(m.text for m in req.messages)]
    assert result.usage.input_tokens == sum(count_tokens(p) for p in pieces)
    assert result.usage.output_tokens == count_tokens(result.text)

    record = only_record(stack, key)
    assert record["method"] == "POST"
    assert record["path"] == expected_path(stack, key)
    assert record["status"] == 200 and record["fault"] is None  # passed strict validation
    body = record["body"]
    assert system_seen(b.provider, body) == SYSTEM
    want = ["user", "model", "user"] if b.provider == "gemini" else ["user", "assistant", "user"]
    assert turns_seen(b.provider, body) == want
    if b.provider != "gemini":
        assert body["model"] == b.model
        assert body.get("stream") in (None, False)


@pytest.mark.parametrize("key", BACKENDS)
async def test_stream_call_reaches_the_simulator_and_is_priced(stack: Stack, key: str) -> None:
    deltas, result = await call_stream(stack, key, multi_turn())
    assert outcome_from_pb(result.outcome) is Outcome.SUCCESS, result.error_message
    kinds = {d.WhichOneof("event") for d in deltas}
    assert kinds == {"text_delta"}
    assert len(deltas) > 1  # really streamed, not one lump
    assert "".join(d.text_delta for d in deltas) == result.text
    assert result.text.startswith("Simulated answer from ")
    assert_priced(stack, key, result)

    record = only_record(stack, key)
    assert record["path"] == expected_path(stack, key, stream=True)
    assert record["status"] == 200
    provider = stack.config.backends[key].provider
    if provider == "gemini":
        assert record["query"].get("alt") == "sse"
    else:
        assert record["body"]["stream"] is True
    if provider in ("openai", "openai_compatible"):
        assert record["body"]["stream_options"] == {"include_usage": True}


WEATHER = ToolDef(
    "get_weather",
    "Current weather for a city.",
    json.dumps(
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        }
    ),
)


def tool_request() -> BlindRequest:
    return BlindRequest(
        messages=(Message(Role.USER, "Use get_weather to tell me if it rains in Paris."),),
        system_prompt="You may call tools.",
        tools=(WEATHER,),
    )


def tools_seen(provider: str, body: dict[str, Any]) -> list[str]:
    if provider == "anthropic":
        return [t["name"] for t in body["tools"]]
    if provider == "gemini":
        return [d["name"] for t in body["tools"] for d in t["functionDeclarations"]]
    return [t["function"]["name"] for t in body["tools"]]


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("key", BACKENDS)
async def test_a_tool_named_in_the_prompt_comes_back_as_a_tool_call(
    stack: Stack, key: str, stream: bool
) -> None:
    if stream:
        deltas, result = await call_stream(stack, key, tool_request())
        streamed = [d.tool_call for d in deltas if d.WhichOneof("event") == "tool_call"]
        assert [c.name for c in streamed] == ["get_weather"]
    else:
        result = await call(stack, key, tool_request())
    assert outcome_from_pb(result.outcome) is Outcome.SUCCESS, result.error_message
    assert [c.name for c in result.tool_calls] == ["get_weather"]
    assert json.loads(result.tool_calls[0].arguments_json) == {"city": "sim-city"}
    assert result.tool_calls[0].id
    assert result.finish_reason == "tool_calls"
    assert_priced(stack, key, result)
    record = only_record(stack, key)
    assert record["status"] == 200
    assert tools_seen(stack.config.backends[key].provider, record["body"]) == ["get_weather"]


def image_seen(provider: str, body: dict[str, Any]) -> list[str]:
    """Base64 payloads of the images in the request body, in the provider's own shape."""
    out: list[str] = []
    if provider == "anthropic":
        for m in body["messages"]:
            for block in m["content"] if isinstance(m["content"], list) else []:
                if block["type"] == "image":
                    assert block["source"]["type"] == "base64"
                    assert block["source"]["media_type"] == "image/png"
                    out.append(block["source"]["data"])
    elif provider == "gemini":
        for c in body["contents"]:
            for part in c["parts"]:
                if "inlineData" in part:
                    assert part["inlineData"]["mimeType"] == "image/png"
                    out.append(part["inlineData"]["data"])
    else:
        for m in body["messages"]:
            for part in m["content"] if isinstance(m["content"], list) else []:
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith("data:image/png;base64,")
                    out.append(url.split(",", 1)[1])
    return out


IMAGE_BACKENDS = ("claude", "gpt", "gemini")


async def test_image_backends_are_the_configured_ones(stack: Stack) -> None:
    assert (
        tuple(k for k, b in stack.config.backends.items() if "image" in b.modalities)
        == IMAGE_BACKENDS
    )


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("key", IMAGE_BACKENDS)
async def test_an_image_attachment_reaches_an_image_backend(
    stack: Stack, key: str, stream: bool
) -> None:
    msg = Message(
        Role.USER,
        "What is in this picture?",
        attachments=(Attachment("dot.png", "image/png", PNG),),
    )
    req = BlindRequest(messages=(msg,), system_prompt=SYSTEM)
    if stream:
        _, result = await call_stream(stack, key, req)
    else:
        result = await call(stack, key, req)
    assert outcome_from_pb(result.outcome) is Outcome.SUCCESS, result.error_message
    assert "I saw 1 attachment." in result.text  # the simulator parsed exactly one image
    assert_priced(stack, key, result)
    record = only_record(stack, key)
    assert record["status"] == 200
    assert image_seen(stack.config.backends[key].provider, record["body"]) == [
        base64.b64encode(PNG).decode()
    ]


async def test_an_audio_attachment_reaches_gemini(stack: Stack) -> None:
    msg = Message(
        Role.USER, "Transcribe this.", attachments=(Attachment("a.wav", "audio/wav", WAV),)
    )
    result = await call(stack, "gemini", BlindRequest(messages=(msg,)))
    assert outcome_from_pb(result.outcome) is Outcome.SUCCESS, result.error_message
    assert "I saw 1 attachment." in result.text
    parts = only_record(stack, "gemini")["body"]["contents"][0]["parts"]
    assert [p["inlineData"]["mimeType"] for p in parts if "inlineData" in p] == ["audio/wav"]


NO_AUDIO = ("local", "claude", "kimi", "gpt", "grok")


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("key", NO_AUDIO)
async def test_audio_to_a_backend_without_audio_is_a_local_bad_request(
    stack: Stack, key: str, stream: bool
) -> None:
    assert "audio" not in stack.config.backends[key].modalities
    msg = Message(
        Role.USER, "Transcribe this.", attachments=(Attachment("a.wav", "audio/wav", WAV),)
    )
    req = BlindRequest(messages=(msg,))
    if stream:
        deltas, result = await call_stream(stack, key, req)
        assert deltas == []
    else:
        result = await call(stack, key, req)
    assert outcome_from_pb(result.outcome) is Outcome.BAD_REQUEST
    message = result.error_message
    assert key in message and "audio/wav" in message and "modalities" in message
    assert result.http_status == 0 and result.cost_usd == 0
    assert stack.sim.requests() == []  # nothing was sent
