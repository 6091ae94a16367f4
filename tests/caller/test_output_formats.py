"""Structured output (``response_format``) through every layer that is pure: the contract, each
provider's wire field, which backends can return it (config, router, caller), the input limits
and the identity guard. The simulator and the HTTP edge carry it end to end in tests/sim and
tests/edge."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from caller_svc.attempt import admit
from caller_svc.identity import IdentityGuard, IdentityLeak
from router_svc.chain import SKIP_REASONS, Skip, build_chain
from router_svc.classify import classify
from tests.router import helpers as h
from uniwizard.config import ConfigError, dump_config, load_config
from uniwizard.config_types import BackendConfig
from uniwizard.convert import request_from_pb, request_to_pb
from uniwizard.limits import Limits, check_request
from uniwizard.providers import UnsupportedInput, get_adapter
from uniwizard.providers.formats import PROVIDER_DEFAULTS, can_return, output_formats
from uniwizard.providers.tokens import estimate_task_tokens
from uniwizard.types import (
    BlindRequest,
    CallResult,
    Message,
    Outcome,
    OutputFormat,
    ResponseFormat,
    Role,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
AS_SCHEMA = ResponseFormat(OutputFormat.JSON_SCHEMA, "trip", json.dumps(SCHEMA), strict=True)
AS_JSON = ResponseFormat(OutputFormat.JSON_OBJECT)


def request(fmt: ResponseFormat | None) -> BlindRequest:
    return BlindRequest((Message(Role.USER, "Plan a trip to Lima."),), response_format=fmt)


def backend(provider: str, **kw: object) -> BackendConfig:
    return BackendConfig(key="b", provider=provider, url="http://127.0.0.1:1/v1", model="m", **kw)  # type: ignore[arg-type]


def body(provider: str, fmt: ResponseFormat | None) -> dict[str, object]:
    built = get_adapter(provider).build_request(backend(provider), request(fmt), "k", stream=False)
    assert built.json is not None
    return built.json


@pytest.mark.parametrize("provider", ["openai", "openai_compatible"])
def test_openai_wire_format(provider: str) -> None:
    assert "response_format" not in body(provider, None)
    assert body(provider, AS_JSON)["response_format"] == {"type": "json_object"}
    assert body(provider, AS_SCHEMA)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "trip", "schema": SCHEMA, "strict": True},
    }


def test_anthropic_wire_format() -> None:
    assert "output_config" not in body("anthropic", None)
    assert body("anthropic", AS_SCHEMA)["output_config"] == {
        "format": {"type": "json_schema", "schema": SCHEMA}
    }
    with pytest.raises(UnsupportedInput, match="json_schema"):  # no JSON mode without a schema
        body("anthropic", AS_JSON)


def test_gemini_wire_format() -> None:
    assert "responseMimeType" not in body("gemini", None)["generationConfig"]  # type: ignore[operator]
    plain = body("gemini", AS_JSON)["generationConfig"]
    assert plain == {"maxOutputTokens": 1024, "responseMimeType": "application/json"}
    shaped = body("gemini", AS_SCHEMA)["generationConfig"]
    assert shaped == {
        "maxOutputTokens": 1024,
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_schema_that_is_not_a_json_object_is_refused_before_sending(provider: str) -> None:
    for text, words in (("{nope", "not valid JSON"), ("[1]", "must be a JSON object")):
        bad = dataclasses.replace(AS_SCHEMA, schema_json=text)
        with pytest.raises(UnsupportedInput, match=words):
            body(provider, bad)


def test_which_backends_can_return_what() -> None:
    assert PROVIDER_DEFAULTS["openai"] == ("json_object", "json_schema")
    assert output_formats(backend("anthropic")) == ("json_schema",)
    assert output_formats(backend("openai_compatible")) == ()
    assert output_formats(backend("anthropic", output_formats=())) == ()  # configured: none
    server = backend("openai_compatible", output_formats=("json_object",))
    assert can_return(server, AS_JSON) and not can_return(server, AS_SCHEMA)
    assert can_return(server, None) and can_return(server, ResponseFormat())  # text: always


def test_the_router_skips_backends_that_cannot_return_the_format() -> None:
    backends = dict(h.BACKENDS)
    backends["kimi"] = dataclasses.replace(backends["kimi"], output_formats=("json_object",))
    task = h.make_task(
        "Review this pull request diff for race conditions", response_format=AS_SCHEMA
    )
    p = h.policy()
    est = estimate_task_tokens(task)
    d = build_chain(task, classify(task, p, est), p, backends, h.healthy(), estimate=est, now=0.0)
    skipped = {s.backend: s for s in d.skipped}
    assert skipped["kimi"] == Skip(
        "kimi", "no_output_format", "cannot return json_schema (can: json_object)"
    )
    assert skipped["local"].reason == "no_output_format" and "can: none" in skipped["local"].detail
    assert "claude" in d.chain and "gpt" in d.chain and "gemini" in d.chain  # provider defaults
    assert "no_output_format" in SKIP_REASONS
    # Text is every backend's.
    plain = h.make_task("Review this pull request diff for race conditions")
    d = build_chain(plain, classify(plain, p, est), p, backends, h.healthy(), estimate=est, now=0.0)
    assert not [s for s in d.skipped if s.reason == "no_output_format"]


def test_a_pinned_backend_that_cannot_is_a_bad_request_with_nothing_sent() -> None:
    claude = backend("anthropic")
    result = admit(claude, request(AS_JSON), None)
    assert isinstance(result, CallResult) and result.outcome is Outcome.BAD_REQUEST
    assert (
        result.error_message
        == "backend b cannot return json_object output (output_formats: json_schema)"
    )
    assert not isinstance(admit(claude, request(AS_SCHEMA), None), CallResult)


def test_the_contract_carries_it_and_the_limits_check_it() -> None:
    for fmt in (None, AS_JSON, AS_SCHEMA):
        assert request_from_pb(request_to_pb(request(fmt))).response_format == fmt
    assert request_from_pb(request_to_pb(request(ResponseFormat()))).response_format is None
    limits = Limits()
    assert check_request(request_to_pb(request(AS_SCHEMA)), limits) == ""
    for fmt, words in (
        (dataclasses.replace(AS_SCHEMA, schema_json="{nope"), "schema_json is not valid JSON"),
        (dataclasses.replace(AS_SCHEMA, schema_json='"x"'), "must be a JSON object"),
        (dataclasses.replace(AS_SCHEMA, name="has space"), "name must be letters"),
    ):
        assert words in check_request(request_to_pb(request(fmt)), limits)
    pb = request_to_pb(request(AS_SCHEMA))
    pb.response_format.type = 7  # type: ignore[assignment]  # from a newer client
    assert "not an output format this service knows" in check_request(pb, limits)


def test_the_identity_guard_scrubs_the_schema_and_its_name() -> None:
    schema = {"type": "object", "properties": {"reply": {"description": "what Timmy would say"}}}
    fmt = ResponseFormat(OutputFormat.JSON_SCHEMA, "timmy_reply", json.dumps(schema))
    guarded = IdentityGuard(names=("Timmy",)).apply(request(fmt))
    out = guarded.request.response_format
    assert out is not None and "timmy" not in (out.name + out.schema_json).lower()
    assert json.loads(out.schema_json)["properties"]["reply"]["description"].startswith("what ")
    assert set(guarded.fields) == {"response_format.name", "response_format.schema"}
    with pytest.raises(IdentityLeak) as leak:
        IdentityGuard(names=("Timmy",), on_detect="reject").apply(request(fmt))
    assert "response_format.schema" in leak.value.fields


def test_the_backends_file_says_what_each_backend_can_return(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "backends.yaml")
    formats = {k: output_formats(b) for k, b in config.backends.items()}
    assert formats["gpt"] == formats["gemini"] == ("json_object", "json_schema")
    assert formats["claude"] == ()  # claude-sonnet-4 predates Anthropic's structured outputs
    assert formats["kimi"] == ("json_object",) and formats["grok"] == ("json_schema",)
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(config))
    assert load_config(again).backends == config.backends
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "backends:\n  x:\n    provider: openai\n    url: http://h/v1\n    model: m\n"
        "    output_formats: [json_object, xml]\n"
    )
    with pytest.raises(ConfigError, match=r"unknown output format 'xml' \(known: json_object"):
        load_config(bad)
