"""OpenAI adapter: golden request/response/error/stream files, checked against the official SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the SDKs here are built on httpx2, a fork with the same API
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.caller import golden_util as g
from uniwizard.config_types import BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.providers.base import HttpRequest

PROVIDER = "openai"
ADAPTER = get_adapter(PROVIDER)

REQUESTS = g.files(PROVIDER, "request")
RESPONSES = g.files(PROVIDER, "response")
STREAMS = g.files(PROVIDER, "stream", ".sse")


def test_probe_is_a_model_listing() -> None:
    backend = BackendConfig(
        key="gpt", provider=PROVIDER, url="https://api.openai.com/v1/", model="gpt-4o"
    )
    probe = ADAPTER.probe_request(backend, "sk-x")
    auth = {"authorization": "Bearer sk-x"}
    assert probe == HttpRequest("GET", "https://api.openai.com/v1/models", auth)


# -- fidelity: the official SDK accepts what the goldens hold ----------------------------------


@pytest.mark.parametrize("path", RESPONSES, ids=g.ids(RESPONSES))
def test_response_bodies_are_sdk_shaped(path: Path) -> None:
    data = g.load(path)
    if "expected_error" in data:
        pytest.skip("deliberately malformed")
    ChatCompletion.model_validate(data["body"])


@pytest.mark.parametrize("path", STREAMS, ids=g.ids(STREAMS))
def test_stream_chunks_are_sdk_shaped(path: Path) -> None:
    for _, obj in g.sse_data_objects(path.read_text()):
        if isinstance(obj, dict) and "error" not in obj:
            ChatCompletionChunk.model_validate(obj)


def _sdk_client(handler: Any, base_url: str, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=key or "none",
        base_url=base_url,
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


@pytest.mark.parametrize("path", REQUESTS, ids=g.ids(REQUESTS))
def test_sdk_sends_the_same_request(path: Path) -> None:
    """Calling the SDK with our body as keyword arguments proves every field is a real parameter
    (the SDK raises TypeError on unknown ones) and that URL and auth match what the SDK sends."""
    data = g.load(path)
    if "expected" not in data:
        pytest.skip("no request is built for this case")
    expected = data["expected"]
    seen: list[httpx.Request] = []
    response = g.load(g.GOLDEN / PROVIDER / "response_answer.json")["body"]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if expected["json"].get("stream"):
            text = (g.GOLDEN / PROVIDER / "stream_text.sse").read_text()
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)
        return httpx.Response(200, json=response)

    inp = data["input"]
    client = _sdk_client(handler, inp["backend"]["url"], inp["api_key"])
    result = client.chat.completions.create(**expected["json"])
    if expected["json"].get("stream"):
        for _ in result:  # type: ignore[union-attr]
            pass
    (request,) = seen
    assert str(request.url) == expected["url"]
    assert request.headers["authorization"] == expected["headers"]["authorization"]
    assert json.loads(request.content) == expected["json"]


def test_sdk_reads_our_stream_transcripts_like_we_do() -> None:
    for name in ("stream_text.sse", "stream_tool_calls.sse"):
        text = (g.GOLDEN / PROVIDER / name).read_text()

        def handler(request: httpx.Request, text: str = text) -> httpx.Response:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)

        client = _sdk_client(handler, "https://api.openai.com/v1", "sk-x")
        stream = client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        sdk_text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        ours = g.run_stream(ADAPTER, text.encode(), 5)["result"]
        assert sdk_text == ours["text"]
