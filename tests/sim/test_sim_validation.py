"""Unit tests of the per-provider request validators, auth checks and routing (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from uniwizard_sim import anthropic, gemini, openai
from uniwizard_sim.common import Conversation, ErrorReply
from uniwizard_sim.routes import Route, resolve

U = {"role": "user", "content": "hi"}


def oa_err(body: Any) -> dict[str, Any]:
    res = openai.parse_request(body)
    assert isinstance(res, ErrorReply), res
    assert res.status == 400
    assert set(res.body["error"]) == {"message", "type", "param", "code"}
    assert res.body["error"]["type"] == "invalid_request_error"
    return dict(res.body["error"])


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [U]}, None, None),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        ({"model": "m", "messages": "hi"}, "messages", "invalid_type"),
        ({"model": "m", "messages": []}, "messages", "empty_array"),
        (
            {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        (
            {"model": "m", "messages": [{"role": "user"}]},
            "messages[0].content",
            "missing_required_parameter",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].image_url",
            "missing_required_parameter",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:text/plain;base64,AA"}}
                        ],
                    }
                ],
            },
            "messages[0].content[0].image_url.url",
            "invalid_value",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AA", "format": "ogg"}}
                        ],
                    }
                ],
            },
            "messages[0].content[0].input_audio.format",
            "invalid_value",
        ),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
            "missing_required_parameter",
        ),
        (
            {"model": "m", "messages": [U], "tools": [{"type": "function", "function": {}}]},
            "tools[0].function.name",
            "missing_required_parameter",
        ),
        (
            {"model": "m", "messages": [U], "stream_options": {"include_usage": True}},
            "stream_options",
            "invalid_value",
        ),
        ({"model": "m", "messages": [U], "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        (
            {"model": "m", "messages": [U], "temperature": 3},
            "temperature",
            "decimal_above_max_value",
        ),
    ],
)
def test_openai_validation(body: dict[str, Any], param: str | None, code: str | None) -> None:
    err = oa_err(body)
    assert err["param"] == param
    assert err["code"] == code


def test_openai_valid_request() -> None:
    conv = openai.parse_request(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "result"},
                {"role": "user", "content": "again"},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 50,
        }
    )
    assert isinstance(conv, Conversation)
    assert conv.prompt_texts == ("sys", "look", "result", "again")
    assert conv.last_user_text == "again"
    assert conv.attachments == 1
    assert conv.stream and conv.include_usage and conv.max_tokens == 50
    assert oa_err("not an object")["message"].startswith("We could not parse the JSON body")


def test_openai_auth() -> None:
    assert openai.auth_error({"Authorization": "Bearer k"}, {}, "gpt") is None
    assert openai.auth_error({}, {}, "local") is None
    missing = openai.auth_error({}, {}, "gpt")
    assert missing is not None and missing.status == 401
    assert "didn't provide an API key" in missing.body["error"]["message"]
    empty = openai.auth_error({"Authorization": "Bearer "}, {}, "gpt")
    assert empty is not None and empty.body["error"]["code"] == "invalid_api_key"


def an_err(body: Any) -> str:
    res = anthropic.parse_request(body)
    assert isinstance(res, ErrorReply), res
    assert res.status == 400
    assert res.body["type"] == "error"
    assert res.body["error"]["type"] == "invalid_request_error"
    return str(res.body["error"]["message"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m", "messages": [U]}, "max_tokens: Field required"),
        ({"max_tokens": 5, "messages": [U]}, "model: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "at least one message"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]},
            'first message must use the "user" role',
        ),
        ({"model": "m", "max_tokens": 5, "messages": [U, U]}, "roles must alternate"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}, U]},
            'Unexpected role "system"',
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "data": "AA"}}],
                    }
                ],
            },
            "source.base64.media_type: Field required",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "AA",
                                },
                            }
                        ],
                    }
                ],
            },
            "media_type: Input should be",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ],
            },
            "does not match",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [U], "tools": [{"name": "t"}]},
            "tools.0.custom.input_schema: Field required",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": ""}]},
            "non-empty content",
        ),
        ({"model": "m", "max_tokens": 0, "messages": [U]}, "greater than or equal to 1"),
    ],
)
def test_anthropic_validation(body: dict[str, Any], fragment: str) -> None:
    assert fragment in an_err(body)


def test_anthropic_valid_and_auth() -> None:
    conv = anthropic.parse_request(
        {
            "model": "m",
            "max_tokens": 9,
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                        },
                        {"type": "text", "text": "what"},
                    ],
                },
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "more"},
            ],
        }
    )
    assert isinstance(conv, Conversation)
    assert conv.prompt_texts == ("sys", "what", "a", "more")
    assert conv.attachments == 1 and conv.max_tokens == 9
    assert anthropic.auth_error({"x-api-key": "k", "anthropic-version": "v"}, {}, "c") is None
    assert (
        anthropic.auth_error({"Authorization": "Bearer k", "anthropic-version": "v"}, {}, "c")
        is None
    )
    no_key = anthropic.auth_error({"anthropic-version": "v"}, {}, "c")
    assert no_key is not None and no_key.status == 401
    assert no_key.body["error"]["type"] == "authentication_error"
    no_version = anthropic.auth_error({"x-api-key": "k"}, {}, "c")
    assert no_version is not None and no_version.status == 400


def gm_err(body: Any, model: str = "g") -> str:
    res = gemini.parse_request(body, model=model)
    assert isinstance(res, ErrorReply), res
    assert res.status == 400
    assert res.body["error"]["status"] == "INVALID_ARGUMENT"
    assert res.body["error"]["code"] == 400
    return str(res.body["error"]["message"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
        ({"contents": [{"parts": [{"inlineData": {"data": "AA"}}]}]}, "mime_type"),
        (
            {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png"}}]}]},
            "empty inlineData",
        ),
        ({"contents": [{"parts": [{"bogus": 1}]}]}, 'Unknown name "bogus"'),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{}]}]},
            "Name cannot be empty",
        ),
    ],
)
def test_gemini_validation(body: dict[str, Any], fragment: str) -> None:
    assert fragment in gm_err(body)


def test_gemini_valid_and_auth() -> None:
    conv = gemini.parse_request(
        {
            "system_instruction": {"parts": [{"text": "sys"}]},
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"inlineData": {"mimeType": "image/png", "data": "AA"}},
                        {"text": "q"},
                    ],
                },
                {"role": "model", "parts": [{"text": "a"}]},
                {"role": "user", "parts": [{"text": "q2"}]},
            ],
            "generationConfig": {"maxOutputTokens": 7},
        },
        model="gemini-2.5-flash",
        stream=True,
    )
    assert isinstance(conv, Conversation)
    assert conv.prompt_texts == ("sys", "q", "a", "q2")
    assert conv.attachments == 1 and conv.stream and conv.max_tokens == 7
    assert gemini.auth_error({"x-goog-api-key": "k"}, {}, "g") is None
    assert gemini.auth_error({}, {"key": "k"}, "g") is None
    denied = gemini.auth_error({}, {}, "g")
    assert denied is not None and denied.status == 403
    assert denied.body["error"]["status"] == "PERMISSION_DENIED"


def test_routes() -> None:
    assert resolve("POST", "v1/chat/completions", {}) == Route("openai", "generate")
    assert resolve("POST", "v1/messages", {}) == Route("anthropic", "generate")
    assert resolve("POST", "v1beta/models/gemini-2.5-flash:generateContent", {}) == Route(
        "gemini", "generate", "gemini-2.5-flash", False
    )
    assert resolve("POST", "v1beta/models/m:streamGenerateContent", {}) == Route(
        "gemini", "generate", "m", True
    )
    assert resolve("GET", "v1/models", {}) == Route("openai", "models")
    assert resolve("GET", "v1/models", {"anthropic-version": "x"}) == Route("anthropic", "models")
    assert resolve("GET", "v1beta/models", {}) == Route("gemini", "models")
    assert resolve("GET", "v1/models/gpt-4o", {}) == Route("openai", "model", "gpt-4o")
    assert resolve("GET", "v1/chat/completions", {}) is None
    assert resolve("POST", "v2/anything", {}) is None
    assert resolve("POST", "v1beta/models/m:countTokens", {}) is None
