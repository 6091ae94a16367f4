"""OpenAI-compatible adapter (llama.cpp, Moonshot, xAI): goldens plus the overrides."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2 as httpx  # the SDKs here are built on httpx2, a fork with the same API
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.caller import golden_util as g
from uniwizard.config_types import BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.providers.base import HttpRequest
from uniwizard.types import BlindRequest, Message, Role

PROVIDER = "openai_compatible"
ADAPTER = get_adapter(PROVIDER)

RESPONSES = g.files(PROVIDER, "response")
STREAMS = g.files(PROVIDER, "stream", ".sse")


LOCAL = BackendConfig(
    key="local", provider=PROVIDER, url="http://localhost:8081/v1", model="hermes"
)


def test_overrides() -> None:
    request = BlindRequest(messages=(Message(Role.USER, "hi"),))
    built = ADAPTER.build_request(LOCAL, request, None, stream=False)
    assert "authorization" not in built.headers
    assert built.json is not None
    assert built.json["max_tokens"] == 1024 and "max_completion_tokens" not in built.json
    openai_built = get_adapter("openai").build_request(LOCAL, request, None, stream=False)
    assert openai_built.json is not None and "max_tokens" not in openai_built.json


def test_probe_without_key() -> None:
    probe = ADAPTER.probe_request(LOCAL, None)
    assert probe == HttpRequest("GET", "http://localhost:8081/v1/models", {})


@pytest.mark.parametrize("path", RESPONSES, ids=g.ids(RESPONSES))
def test_response_bodies_are_sdk_shaped(path: Path) -> None:
    data = g.load(path)
    if "expected_error" in data:
        pytest.skip("an error object sent with a 200, not an answer")
    ChatCompletion.model_validate(data["body"])


@pytest.mark.parametrize("path", STREAMS, ids=g.ids(STREAMS))
def test_stream_chunks_are_sdk_shaped(path: Path) -> None:
    for _, obj in g.sse_data_objects(path.read_text()):
        if isinstance(obj, dict) and "error" not in obj:
            ChatCompletionChunk.model_validate(obj)


def test_sdk_accepts_the_body() -> None:
    data = g.load(g.GOLDEN / PROVIDER / "request_tools.json")["expected"]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = g.load(g.GOLDEN / PROVIDER / "response_moonshot_answer.json")["body"]
        return httpx.Response(200, json=body)

    client = openai.OpenAI(
        api_key="sk-test-moonshot",
        base_url="https://api.moonshot.ai/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    client.chat.completions.create(**data["json"])
    assert str(seen[0].url) == data["url"]
    assert json.loads(seen[0].content) == data["json"]
