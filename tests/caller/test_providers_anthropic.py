"""Anthropic adapter: golden request/response/error/stream files, checked against the SDK."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import httpx2 as httpx  # the SDKs here are built on httpx2, a fork with the same API
import pydantic
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent

from tests.caller import golden_util as g
from uniwizard.config_types import BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.providers.base import HttpRequest, UnsupportedInput
from uniwizard.types import Attachment, BlindRequest, Message, Role, ToolCall

PROVIDER = "anthropic"
ADAPTER = get_adapter(PROVIDER)
BACKEND = BackendConfig(
    key="claude", provider=PROVIDER, url="https://api.anthropic.com/v1", model="claude-x"
)

REQUESTS = g.files(PROVIDER, "request")
RESPONSES = g.files(PROVIDER, "response")
STREAMS = g.files(PROVIDER, "stream", ".sse")


def test_probe() -> None:
    assert ADAPTER.probe_request(BACKEND, "sk-ant") == HttpRequest(
        "GET",
        "https://api.anthropic.com/v1/models",
        {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"},
    )


def test_audio_is_unsupported_input_naming_the_media_type() -> None:
    request = BlindRequest(
        messages=(Message(Role.USER, "hi", attachments=(Attachment("a", "audio/mpeg", b"x"),)),)
    )
    with pytest.raises(UnsupportedInput, match="audio/mpeg"):
        ADAPTER.build_request(BACKEND, request, "k", stream=False)
    assert issubclass(UnsupportedInput, ValueError)


def test_roles_alternate_and_tool_results_lead_their_turn() -> None:
    request = BlindRequest(
        messages=(
            Message(Role.USER, "a"),
            Message(Role.USER, "b"),
            Message(Role.ASSISTANT, "", tool_calls=(ToolCall("t1", "f", "{}"),)),
            Message(Role.USER, "note"),
            Message(Role.TOOL, "42", tool_call_id="t1"),
        )
    )
    body = ADAPTER.build_request(BACKEND, request, "k", stream=False).json
    assert body is not None
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["type"] for b in messages[0]["content"]] == ["text", "text"]
    assert [b["type"] for b in messages[2]["content"]] == ["tool_result", "text"]
    assert body["max_tokens"] == BACKEND.max_output_tokens


def test_thinking_goes_back_except_in_a_final_assistant_turn() -> None:
    """Thinking is never switched on, and then the API refuses thinking blocks in an assistant
    message in the final position ("When thinking is disabled, an `assistant` message in the
    final position cannot contain `thinking`"); earlier turns carry theirs."""
    block = {"type": "thinking", "thinking": "Look it up.", "signature": "EqQB"}
    state = json.dumps({"provider": "anthropic", "thinking": [block]})
    call = ToolCall("t1", "f", "{}", provider_state=state)
    turns = (Message(Role.USER, "a"), Message(Role.ASSISTANT, "Checking.", tool_calls=(call,)))

    def assistant_blocks(*messages: Message) -> list[str]:
        body = ADAPTER.build_request(
            BACKEND, BlindRequest(messages=messages), "k", stream=False
        ).json
        assert body is not None
        return [b["type"] for b in body["messages"][1]["content"]]

    answered = (*turns, Message(Role.TOOL, "42", tool_call_id="t1"))
    assert assistant_blocks(*answered) == ["thinking", "text", "tool_use"]
    assert assistant_blocks(*turns) == ["text", "tool_use"]


@pytest.mark.parametrize("path", RESPONSES, ids=g.ids(RESPONSES))
def test_response_bodies_are_sdk_shaped(path: Path) -> None:
    data = g.load(path)
    if "expected_error" in data:
        pytest.skip("deliberately malformed")
    SDKMessage.model_validate(data["body"])


SEP = (",", ":")
EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


@pytest.mark.parametrize("path", STREAMS, ids=g.ids(STREAMS))
def test_stream_events_are_sdk_shaped(path: Path) -> None:
    for name, obj in g.sse_data_objects(path.read_text()):
        assert obj["type"] == name  # Anthropic names every event after its data's type
        if name not in ("ping", "error"):
            EVENT.validate_python(obj)


def _client(handler: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="https://api.anthropic.com",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("path", REQUESTS, ids=g.ids(REQUESTS))
def test_sdk_sends_the_same_request(path: Path) -> None:
    """The SDK takes our body as keyword arguments (unknown ones raise TypeError) and sends it to
    the same URL. (Headers differ on purpose: this SDK release sends ``authorization: Bearer`` and
    its own newer ``anthropic-version``; we send the documented ``x-api-key`` and pin
    ``2023-06-01``, the version whose body format the adapter writes.)"""
    data = g.load(path)
    if "expected" not in data:
        pytest.skip("no request is built for this case")
    expected = data["expected"]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if expected["json"].get("stream"):
            text = (g.GOLDEN / PROVIDER / "stream_text.sse").read_text()
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)
        body = g.load(g.GOLDEN / PROVIDER / "response_answer.json")["body"]
        return httpx.Response(200, json=body)

    result = _client(handler).messages.create(**expected["json"])
    if expected["json"].get("stream"):
        for _ in result:  # type: ignore[union-attr]
            pass
    (request,) = seen
    assert str(request.url) == expected["url"]
    assert expected["headers"]["x-api-key"] in request.headers["authorization"]
    assert expected["headers"]["anthropic-version"] == "2023-06-01"
    assert json.loads(request.content) == expected["json"]


def test_sdk_reads_our_stream_transcripts_like_we_do() -> None:
    for name in ("stream_text.sse", "stream_tool_use.sse"):
        text = (g.GOLDEN / PROVIDER / name).read_text()

        def handler(request: httpx.Request, text: str = text) -> httpx.Response:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)

        with _client(handler).messages.stream(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            final = stream.get_final_message()
        ours = g.run_stream(ADAPTER, text.encode(), 5)["result"]
        sdk_text = "".join(b.text for b in final.content if b.type == "text")
        assert sdk_text == ours["text"]
        sdk_calls = [
            {"id": b.id, "name": b.name, "arguments_json": json.dumps(b.input, separators=SEP)}
            for b in final.content
            if b.type == "tool_use"
        ]
        assert sdk_calls == [
            {k: v for k, v in c.items() if k != "provider_state"} for c in ours["tool_calls"]
        ]
        assert final.usage.output_tokens == ours["usage"]["output_tokens"]


def test_sdk_raises_on_our_error_event() -> None:
    text = (g.GOLDEN / PROVIDER / "stream_error_event.sse").read_text()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)

    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        with _client(handler).messages.stream(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            stream.get_final_message()
