"""The edge's pure translation, without a server: OpenAI request JSON -> our Task (and every
400 naming its field), our results -> OpenAI's JSON (checked against the SDK's own types),
``model`` -> the chain, and failures -> status, type and code."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from edge_svc.auth import bearer, check_caller
from edge_svc.errors import ApiError, forbidden, from_router_error, retry_after
from edge_svc.models import Selection, model_list, select
from edge_svc.request import ChatRequest, parse_chat, with_images
from edge_svc.response import Chunks, completion, headers, usage_json
from uniwizard.auth_grpc import load_authorizer
from uniwizard.types import Attachment, OutputFormat, ResponseFormat, Role, ToolCall
from uniwizard_client import (
    AttemptInfo,
    BackendState,
    Catalog,
    CategoryInfo,
    RouterError,
    ThinkResult,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}


def chat(**body: Any) -> ChatRequest:
    body.setdefault("model", "auto")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_chat(body, request_id="r1")


def refused(**body: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        chat(**body)
    assert err.value.status == 400 and err.value.code == "bad_request"
    return err.value


# -- requests ---------------------------------------------------------------------------------


def test_a_whole_conversation_becomes_one_blind_request() -> None:
    req = chat(
        model=" reasoning ",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "name": "Timmy",  # dropped: nothing about who asks leaves
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "text", "text": "And the weather?"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'},
                        "provider_state": '{"gemini": "sig"}',
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[WEATHER],
        max_completion_tokens=200,
        temperature=0.3,
        user="agent-7",
        stream=True,
        stream_options={"include_usage": True},
        n=1,
        top_p=1,
        tool_choice="auto",
        parallel_tool_calls=True,
        response_format={"type": "text"},
        metadata={"k": "v"},
    )
    r = req.task.request
    assert req.model == "reasoning" and req.stream and req.include_usage
    assert req.task.request_id == "r1"
    assert r.system_prompt == "Be brief.\n\nUse metric units."
    assert [m.role for m in r.messages] == [Role.USER, Role.ASSISTANT, Role.TOOL]
    user = r.messages[0]
    assert user.text == "What is in this picture?\nAnd the weather?"
    assert user.attachments == (Attachment("attachment-1.png", "image/png", base64.b64decode(PNG)),)
    assert r.messages[1].tool_calls == (
        ToolCall("call_1", "get_weather", '{"city": "Lima"}', provider_state='{"gemini": "sig"}'),
    )
    assert (r.messages[2].text, r.messages[2].tool_call_id) == ("sunny", "call_1")
    assert [t.name for t in r.tools] == ["get_weather"]
    assert json.loads(r.tools[0].parameters_json)["properties"] == {"city": {"type": "string"}}
    assert (r.max_output_tokens, r.temperature) == (200, 0.3)
    assert "Timmy" not in repr(req) and "agent-7" not in repr(req)


def test_response_format_is_carried() -> None:
    assert chat(response_format={"type": "text"}).task.request.response_format is None
    plain = chat(response_format={"type": "json_object"}).task.request.response_format
    assert plain == ResponseFormat(OutputFormat.JSON_OBJECT)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    spec = {"name": "place", "schema": schema, "strict": True}
    shaped = chat(response_format={"type": "json_schema", "json_schema": spec})
    f = shaped.task.request.response_format
    assert f is not None and (f.type, f.name, f.strict) == (OutputFormat.JSON_SCHEMA, "place", True)
    assert json.loads(f.schema_json) == schema


def test_audio_and_max_tokens() -> None:
    wav = base64.b64encode(b"RIFF....WAVE").decode()
    req = chat(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "transcribe"},
                    {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
                ],
            }
        ],
        max_tokens=50,
    )
    (att,) = req.task.request.messages[0].attachments
    assert (att.media_type, att.data) == ("audio/wav", b"RIFF....WAVE")
    assert req.task.request.max_output_tokens == 50
    assert chat(max_tokens=7, max_completion_tokens=7).task.request.max_output_tokens == 7


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": None}, "model", "model is required"),
        ({"messages": []}, "messages", "non-empty list"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages", "no user message"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role", "'function'"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "system", "content": "late"},
                ]
            },
            "messages[1].role",
            "after the conversation started",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
            "messages[0].content[0].type",
            "'file'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "UNIWIZARD_HTTP_IMAGE_HOSTS",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "base64",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:text/plain;base64,aGk="},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "not an image",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "not valid base64",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "function": {"name": "f", "arguments": "{not json"}}
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
            "not valid JSON",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}]},
            "messages[1].tool_call_id",
            "required",
        ),
        (
            {"messages": [{"role": "user", "content": "a", "audio": {"id": "x"}}]},
            "messages[0].audio",
            "not supported",
        ),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "only function tools"),
        (
            {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
            "tools[0].function.name",
            "a letter or '_'",
        ),
        (
            {"tools": [WEATHER, WEATHER]},
            "tools[1]",
            "more than once",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
            "JSON Schema object",
        ),
        ({"temperature": 3}, "temperature", "0 to 2"),
        ({"temperature": True}, "temperature", "0 to 2"),
        ({"max_tokens": 0}, "max_tokens", "positive integer"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, "max_completion_tokens", "disagree"),
        ({"n": 2}, "n", "one choice"),
        ({"n": True}, "n", "one choice"),
        ({"top_p": 0.5}, "top_p", "only 1"),
        ({"tool_choice": "required"}, "tool_choice", "only tool_choice 'auto'"),
        ({"tool_choice": {"type": "function"}}, "tool_choice", "only tool_choice 'auto'"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls", "cannot be turned off"),
        ({"response_format": "json"}, "response_format", "must be an object"),
        ({"response_format": {"type": "xml"}}, "response_format.type", "json_object or json"),
        (
            {"response_format": {"type": "json_object", "json_schema": {}}},
            "response_format.json_schema",
            "not allowed with type json_object",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "name"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format.json_schema.name",
            "is required",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
            "response_format.json_schema.name",
            "letters, digits",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": []},
                }
            },
            "response_format.json_schema.schema",
            "JSON Schema object",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "description": "what it is"},
                }
            },
            "response_format.json_schema.description",
            "not supported",
        ),
        ({"stop": ["\n"]}, "stop", "stop sequences"),
        ({"seed": 1}, "seed", "seed"),
        ({"logit_bias": {"1": 2}}, "logit_bias", "not supported"),
        ({"reasoning_effort": "high"}, "reasoning_effort", "not supported"),
        ({"frobnicate": 1}, "frobnicate", "not supported"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed with"),
        ({"stream": "yes"}, "stream", "true or false"),
    ],
)
def test_what_cannot_be_carried_is_a_400_naming_the_field(
    body: dict[str, Any], param: str, words: str
) -> None:
    err = refused(**body)
    assert err.param == param, err.message
    assert words in err.message
    assert err.body()["error"]["param"] == param


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(ApiError) as err:
        parse_chat([1, 2])
    assert "JSON object, not a list" in err.value.message


def test_image_urls_wait_for_their_bytes_when_fetching_is_on() -> None:
    body = {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://img.test/cat.jpg"}},
                ],
            }
        ],
    }
    req = parse_chat(body, request_id="r", fetch_urls=True)
    (ref,) = req.image_urls
    assert (ref.url, ref.param) == (
        "https://img.test/cat.jpg",
        "messages[0].content[1].image_url.url",
    )
    done = with_images(req, [Attachment("image", "image/jpeg", b"jpeg")])
    (att,) = done.task.request.messages[0].attachments
    assert (att.name, att.media_type, att.data) == ("attachment-1.jpeg", "image/jpeg", b"jpeg")
    assert done.image_urls == ()


# -- responses --------------------------------------------------------------------------------


def result(**kw: Any) -> ThinkResult:
    attempts = (
        AttemptInfo("gpt", "rate_limited", 3.0, 0, 0, 0.0, retry_after_s=2.0),
        AttemptInfo(
            "claude",
            "success",
            40.0,
            120,
            30,
            0.0012,
            cached_input_tokens=100,
            cache_write_tokens=5,
            reasoning_tokens=10,
        ),
    )
    base: dict[str, Any] = dict(
        text="Augustus.",
        backend="claude",
        model="claude-sonnet-4-20250514",
        category="knowledge",
        attempts=attempts,
        cost_usd=0.0012,
        trace_id="a" * 32,
        request_id="r1",
        finish_reason="stop",
        input_tokens=120,
        output_tokens=30,
    )
    base.update(kw)
    return ThinkResult(**base)


def extras(model: Any, path: str = "") -> set[str]:
    """Every field the SDK's types do not declare, by path (the strict check's other half)."""
    found: set[str] = set()
    if hasattr(model, "model_extra"):
        found |= {f"{path}.{k}".lstrip(".") for k in (model.model_extra or {})}
        for name in type(model).model_fields:
            found |= extras(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for item in model:
            found |= extras(item, f"{path}[]")
    return found


def test_a_completion_is_the_sdks_chat_completion_with_our_usage() -> None:
    body = completion(result(), created=1700000000)
    parsed = ChatCompletion.model_validate(body, strict=True)
    assert extras(parsed) == {"uniwizard"}
    assert parsed.choices[0].message.content == "Augustus."
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None and parsed.usage.total_tokens == 150
    assert parsed.usage.prompt_tokens_details is not None
    assert parsed.usage.prompt_tokens_details.cached_tokens == 100
    assert parsed.usage.completion_tokens_details is not None
    assert parsed.usage.completion_tokens_details.reasoning_tokens == 10
    ours = body["uniwizard"]
    assert ours["backend"] == "claude" and ours["cost_usd"] == 0.0012
    assert [a["outcome"] for a in ours["attempts"]] == ["rate_limited", "success"]


def test_tool_calls_carry_their_provider_state() -> None:
    calls = (ToolCall("c1", "get_weather", '{"city":"Lima"}', provider_state="opaque"),)
    body = completion(result(text="", tool_calls=calls, finish_reason="tool_calls"), created=1)
    parsed = ChatCompletion.model_validate(body, strict=True)
    assert extras(parsed) == {"uniwizard", "choices[].message.tool_calls[].provider_state"}
    message = parsed.choices[0].message
    assert message.content is None and parsed.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"city":"Lima"}'  # type: ignore[union-attr]


@pytest.mark.parametrize("include_usage", [False, True])
def test_chunks_are_the_sdks_chunks(include_usage: bool) -> None:
    chunks = Chunks("chatcmpl-r1", 1, "gpt-4o", include_usage)
    r = result(tool_calls=(ToolCall("c1", "f", "{}"),))
    made = [
        chunks.opening(),
        chunks.text("Aug"),
        chunks.tool_call(ToolCall("c1", "f", "{}"), 0),
        chunks.finish(r),
    ]
    if include_usage:
        made.append(chunks.usage(r))
    parsed = [ChatCompletionChunk.model_validate(c, strict=True) for c in made]
    for chunk in parsed[:-1]:
        assert extras(chunk) == set()
        assert chunk.usage is None and ("usage" in chunk.model_fields_set) == include_usage
    assert parsed[3].choices[0].finish_reason == "tool_calls"
    if include_usage:
        assert parsed[-1].choices == [] and parsed[-1].usage is not None
        assert parsed[-1].usage.total_tokens == 150 and extras(parsed[-1]) == {"uniwizard"}
    else:
        assert extras(parsed[-1]) == {"uniwizard"}


def test_usage_of_an_estimated_answer_and_headers() -> None:
    assert usage_json(result(attempts=()))["prompt_tokens_details"]["cached_tokens"] == 0
    h = headers(backend="gpt", category="quick", request_id="r", traceparent="00-x", cost_usd=0.5)
    assert h["x-uniwizard-cost-usd"] == "0.50000000"
    no_cost = headers(backend="gpt", category="quick", request_id="r", traceparent="00-x")
    assert "x-uniwizard-cost-usd" not in no_cost


# -- models -----------------------------------------------------------------------------------

CATALOG = Catalog(
    categories=(CategoryInfo("reasoning", "Think hard.", ("claude", "gpt")),),
    default_category="reasoning",
    backends=(
        BackendState("claude", "healthy", provider="anthropic", model="claude-x"),
        BackendState("gpt", "cooling_down", reason="3 failures", provider="openai", model="g"),
    ),
)


def test_model_chooses_auto_a_category_or_a_backend() -> None:
    assert select("auto", CATALOG) == Selection("auto", "")
    assert select("reasoning", CATALOG).category == "reasoning"
    assert select("gpt", CATALOG).backend == "gpt"
    with pytest.raises(ApiError) as err:
        select("gpt-5", CATALOG)
    assert err.value.param == "model" and "reasoning" in err.value.message
    assert "claude, gpt" in err.value.message


def test_the_model_list_is_openais_list_with_health() -> None:
    listed = model_list(CATALOG)
    models = [Model.model_validate(m, strict=True) for m in listed["data"]]
    assert [m.id for m in models] == ["auto", "reasoning", "claude", "gpt"]
    assert listed["data"][3]["uniwizard"] == {
        "kind": "backend",
        "model": "g",
        "provider": "openai",
        "state": "cooling_down",
        "reason": "3 failures",
    }
    assert listed["data"][1]["uniwizard"]["prefer"] == ["claude", "gpt"]


# -- errors and auth --------------------------------------------------------------------------


def failed(outcome: str, *attempts: AttemptInfo, code: grpc.StatusCode | None = None) -> ApiError:
    err = RouterError(
        "it failed",
        outcome=outcome,
        attempts=attempts,
        trace_id="t",
        code=code,
        reported=bool(attempts) or code is None,
    )
    return from_router_error(err, "r1")


def attempt(outcome: str, retry: float = 0.0) -> AttemptInfo:
    return AttemptInfo("gpt", outcome, 1.0, 0, 0, 0.0, retry_after_s=retry)


@pytest.mark.parametrize(
    ("outcome", "status", "kind"),
    [
        ("bad_request", 400, "invalid_request_error"),
        ("context_window", 400, "invalid_request_error"),
        ("content_policy", 400, "invalid_request_error"),
        ("identity_leak", 422, "invalid_request_error"),
        ("rate_limited", 429, "rate_limit_error"),
        ("server_error", 502, "api_error"),
        ("refusal", 502, "api_error"),
        ("truncated", 502, "api_error"),
        ("auth", 502, "api_error"),
        ("no_backend", 503, "api_error"),
        ("timeout", 504, "api_error"),
    ],
)
def test_each_outcome_class_has_its_status(outcome: str, status: int, kind: str) -> None:
    err = failed(outcome, attempt(outcome, 3.5))
    assert (err.status, err.type, err.code) == (status, kind, outcome)
    body = err.body()["error"]
    assert body["attempts"][0]["outcome"] == outcome and body["request_id"] == "r1"
    assert body["trace_id"] == "t" and body["param"] is None
    assert ("retry-after" in err.headers) == (status == 429)


def test_429_only_when_every_attempt_was_rate_limited() -> None:
    err = failed("rate_limited", attempt("rate_limited", 7.2), attempt("rate_limited", 2.1))
    assert err.status == 429 and err.headers["retry-after"] == "3"
    mixed = failed("rate_limited", attempt("server_error"), attempt("rate_limited", 2.0))
    assert mixed.status == 502 and mixed.code == "rate_limited"
    assert retry_after([attempt("rate_limited")]) == 1
    assert retry_after([attempt("rate_limited", 0.2)]) == 1


def test_a_token_at_its_budget_is_429_in_openai_s_quota_shape() -> None:
    err = from_router_error(
        RouterError(
            "token 'a' has reached its daily budget ($1.00; spent $1.00)",
            outcome="over_budget",
            code=grpc.StatusCode.RESOURCE_EXHAUSTED,
            retry_after_s=3600.2,
        )
    )
    assert (err.status, err.type, err.code) == (429, "insufficient_quota", "over_budget")
    assert err.headers["retry-after"] == "3601"
    assert err.message.startswith("token 'a' has reached its daily budget")


@pytest.mark.parametrize(
    ("code", "status", "ours"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400, "bad_request"),
        (grpc.StatusCode.UNAUTHENTICATED, 401, "unauthorized"),
        (grpc.StatusCode.PERMISSION_DENIED, 403, "forbidden"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "too_large"),
        (grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "timeout"),
        (grpc.StatusCode.INTERNAL, 502, "internal"),
    ],
)
def test_a_bare_grpc_status_has_its_status(code: grpc.StatusCode, status: int, ours: str) -> None:
    err = from_router_error(RouterError("no", outcome=code.name.lower(), code=code, details="no"))
    assert (err.status, err.code) == (status, ours)
    assert err.message.startswith("router: ")


def test_403_names_the_scope() -> None:
    err = forbidden("think")
    assert (err.status, err.type, err.code) == (403, "permission_error", "forbidden")
    assert "'think'" in err.message


def test_the_bearer_check_uses_the_scoped_tokens(tmp_path: Path) -> None:
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None and bearer("Bearer ") is None and bearer(None) is None
    assert check_caller(None, load_authorizer({})).name == ""  # no token configured: open
    service = "s" * 24
    guarded = load_authorizer({"UNIWIZARD_TOKEN": service})
    assert check_caller("Bearer " + service, guarded).name == "default"
    for header, words in ((None, "missing"), ("Bearer wrong", "invalid"), (service, "missing")):
        with pytest.raises(ApiError) as err:
            check_caller(header, guarded)
        assert err.value.status == 401 and words in err.value.message
        assert err.value.headers["www-authenticate"].startswith("Bearer")
    # a named token: with 'think' it passes as itself; with only 'route' it is a 403
    agent, router_only = "a" * 24, "r" * 24
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        f'  "sha256:{hashlib.sha256(agent.encode()).hexdigest()}":\n'
        "    name: evennia\n    scopes: [think]\n"
        f'  "sha256:{hashlib.sha256(router_only.encode()).hexdigest()}":\n'
        "    name: planner\n    scopes: [route]\n"
    )
    scoped = load_authorizer({"UNIWIZARD_TOKEN": service, "UNIWIZARD_TOKENS_FILE": str(tokens)})
    assert check_caller("Bearer " + agent, scoped).name == "evennia"
    with pytest.raises(ApiError) as err:
        check_caller("Bearer " + router_only, scoped)
    assert err.value.status == 403 and "'think'" in err.value.message
