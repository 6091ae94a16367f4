"""Gemini adapter: golden request/response/error/stream files, checked against google-genai's
models (which forbid unknown fields, so a misspelt key fails)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.genai import types as gt

from tests.caller import golden_util as g
from uniwizard.config_types import BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.providers.base import HttpRequest
from uniwizard.types import BlindRequest, Message, Role

PROVIDER = "gemini"
ADAPTER = get_adapter(PROVIDER)
BACKEND = BackendConfig(
    key="gemini",
    provider=PROVIDER,
    url="https://generativelanguage.googleapis.com/v1beta",
    model="models/gemini-2.5-flash",
)

REQUESTS = g.files(PROVIDER, "request")
RESPONSES = g.files(PROVIDER, "response")
STREAMS = g.files(PROVIDER, "stream", ".sse")


def test_probe_and_model_prefix() -> None:
    base = "https://generativelanguage.googleapis.com/v1beta"
    assert ADAPTER.probe_request(BACKEND, "AIza") == HttpRequest(
        "GET", f"{base}/models", {"x-goog-api-key": "AIza"}
    )
    request = BlindRequest(messages=(Message(Role.USER, "hi"),))
    built = ADAPTER.build_request(BACKEND, request, "AIza", stream=True)
    assert built.url == f"{base}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


@pytest.mark.parametrize("path", REQUESTS, ids=g.ids(REQUESTS))
def test_request_bodies_are_sdk_shaped(path: Path) -> None:
    data = g.load(path)
    if "expected" not in data:
        pytest.skip("no request is built for this case")
    body = dict(data["expected"]["json"])
    for content in body.pop("contents"):
        gt.Content.model_validate(content)
    if "systemInstruction" in body:
        gt.Content.model_validate(body.pop("systemInstruction"))
    for tool in body.pop("tools", []):
        gt.Tool.model_validate(tool)
    gt.GenerationConfig.model_validate(body.pop("generationConfig"))
    assert body == {}, f"unexpected top-level fields {sorted(body)}"


@pytest.mark.parametrize("path", RESPONSES, ids=g.ids(RESPONSES))
def test_response_bodies_are_sdk_shaped(path: Path) -> None:
    data = g.load(path)
    if "expected_error" in data and "body" not in data:
        pytest.skip("deliberately malformed")
    gt.GenerateContentResponse.model_validate(data["body"])


@pytest.mark.parametrize("path", STREAMS, ids=g.ids(STREAMS))
def test_stream_chunks_are_sdk_shaped(path: Path) -> None:
    raw = path.read_bytes()
    assert b"\r\n\r\n" in raw  # Gemini separates its SSE events with CRLF CRLF
    for _, obj in g.sse_data_objects(raw.decode()):
        if "error" not in obj:
            gt.GenerateContentResponse.model_validate(obj)
