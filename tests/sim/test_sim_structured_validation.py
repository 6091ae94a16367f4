"""Unit tests of the structured-output request fields of each dialect (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from uniwizard_sim import anthropic, gemini, openai
from uniwizard_sim.common import Conversation, ErrorReply, OutputFormat

SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "string"}},
    "required": ["a"],
    "additionalProperties": False,
}
U = {"role": "user", "content": "hi"}


def oa(response_format: Any) -> Conversation | ErrorReply:
    return openai.parse_request({"model": "m", "messages": [U], "response_format": response_format})


def an(**fields: Any) -> Conversation | ErrorReply:
    return anthropic.parse_request({"model": "c", "max_tokens": 9, "messages": [U], **fields})


def gm(config: dict[str, Any]) -> Conversation | ErrorReply:
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": config}
    return gemini.parse_request(body, model="g")


def output(res: Conversation | ErrorReply) -> OutputFormat | None:
    assert isinstance(res, Conversation), res
    return res.output


def js(schema: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, **extra}}


def test_openai_accepted() -> None:
    assert output(oa(None)) is None
    assert output(oa({"type": "text"})) is None
    assert output(oa({"type": "json_object"})) == OutputFormat()
    assert output(oa(js(SCHEMA, strict=True, description="d"))) == OutputFormat(SCHEMA)
    loose = {"type": "array", "items": {"type": "object"}}
    assert output(oa(js(loose))) == OutputFormat(loose)  # strict rules only when strict
    assert output(oa({"type": "json_schema", "json_schema": {"name": "n"}})) == OutputFormat()


@pytest.mark.parametrize(
    ("response_format", "param", "code", "fragment"),
    [
        ("json", "response_format", "invalid_type", "expected an object"),
        ({}, "response_format.type", "missing_required_parameter", "Missing"),
        (
            {"type": "object"},
            "response_format.type",
            "invalid_value",
            "Supported values are: 'json_object', 'json_schema', and 'text'.",
        ),
        (
            {"type": "json_schema"},
            "response_format.json_schema",
            "missing_required_parameter",
            "Missing required parameter: 'response_format.json_schema'.",
        ),
        (
            {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
            "response_format.json_schema.name",
            "missing_required_parameter",
            "Missing",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a b", "schema": SCHEMA}},
            "response_format.json_schema.name",
            "invalid_value",
            "does not match pattern",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "n" * 65, "schema": SCHEMA}},
            "response_format.json_schema.name",
            "string_above_max_length",
            "maximum length 64",
        ),
        (
            js("object"),
            "response_format.json_schema.schema",
            "invalid_type",
            "expected an object, but got string",
        ),
        (js(SCHEMA, strict="yes"), "response_format.json_schema.strict", "invalid_type", ""),
        (
            js({"type": "array"}, strict=True),
            "response_format",
            None,
            "Invalid schema for response_format 'answer': schema must be a JSON Schema of "
            "'type: \"object\"', got 'type: \"array\"'.",
        ),
        (
            js({**SCHEMA, "additionalProperties": True}, strict=True),
            "response_format",
            None,
            "In context=(), 'additionalProperties' is required to be supplied and to be false.",
        ),
        (
            js(
                {
                    **SCHEMA,
                    "properties": {"a": {"$ref": "#/$defs/A"}},
                    "$defs": {
                        "A": {
                            "type": "object",
                            "properties": {"x": {"type": "string"}, "y": {"type": "string"}},
                            "required": ["x"],
                            "additionalProperties": False,
                        }
                    },
                },
                strict=True,
            ),
            "response_format",
            None,
            "In context=('$defs', 'A'), 'required' is required to be supplied and to be an "
            "array including every key in properties. Missing 'y'.",
        ),
    ],
)
def test_openai_errors(response_format: Any, param: str, code: str | None, fragment: str) -> None:
    res = oa(response_format)
    assert isinstance(res, ErrorReply), res
    assert res.status == 400
    err = res.body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert (err["param"], err["code"]) == (param, code)
    assert fragment in err["message"]


def test_anthropic_accepted() -> None:
    assert output(an()) is None
    assert output(an(output_config={"effort": "low"})) is None
    fmt = {"type": "json_schema", "schema": SCHEMA}
    assert output(an(output_config={"format": fmt, "effort": "high"})) == OutputFormat(SCHEMA)
    assert output(an(output_format=fmt)) == OutputFormat(SCHEMA)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output_config": "json"}, "output_config: Input should be a valid dictionary or object"),
        (
            {"output_config": {"format": "json"}},
            "output_config.format: Input should be a valid dictionary or object",
        ),
        ({"output_config": {"format": {"schema": SCHEMA}}}, "output_config.format.type: Field"),
        (
            {"output_config": {"format": {"type": "json", "schema": SCHEMA}}},
            "output_config.format.type: Input should be 'json_schema'",
        ),
        (
            {"output_config": {"format": {"type": "json_schema"}}},
            "output_config.format.schema: Field required",
        ),
        (
            {"output_format": {"type": "json_schema", "schema": []}},
            "output_format.schema: Input should be a valid dictionary",
        ),
        (
            {
                "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
                "output_format": {"type": "json_schema", "schema": SCHEMA},
            },
            "output_format: cannot be combined with output_config.format",
        ),
    ],
)
def test_anthropic_errors(fields: dict[str, Any], message: str) -> None:
    res = an(**fields)
    assert isinstance(res, ErrorReply), res
    assert res.status == 400
    assert res.body["type"] == "error"
    assert res.body["error"]["type"] == "invalid_request_error"
    assert res.body["error"]["message"].startswith(message)


def test_gemini_accepted() -> None:
    json_mime = {"responseMimeType": "application/json"}
    upper = {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}
    assert output(gm({})) is None
    assert output(gm({"responseMimeType": "text/plain"})) is None
    assert output(gm(json_mime)) == OutputFormat()
    assert output(gm({**json_mime, "responseJsonSchema": SCHEMA})) == OutputFormat(SCHEMA)
    assert output(gm({**json_mime, "responseSchema": upper})) == OutputFormat(upper)
    snake = {"response_mime_type": "application/json", "response_schema": upper}
    assert output(gm(snake)) == OutputFormat(upper)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"responseMimeType": "text/x.enum"}, "response_mime_type: allowed mimetypes are"),
        ({"responseMimeType": 3}, "Invalid value at 'generation_config.response_mime_type'"),
        ({"responseJsonSchema": SCHEMA}, "response_json_schema: response_mime_type must be"),
        (
            {"responseMimeType": "text/plain", "responseSchema": {"type": "STRING"}},
            "response_schema: response_mime_type must be `application/json`",
        ),
        (
            {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "STRING"},
                "responseJsonSchema": {"type": "string"},
            },
            "response_schema must be omitted",
        ),
        (
            {"responseMimeType": "application/json", "responseJsonSchema": "object"},
            "Invalid value at 'generation_config.response_json_schema'",
        ),
    ],
)
def test_gemini_errors(config: dict[str, Any], fragment: str) -> None:
    res = gm(config)
    assert isinstance(res, ErrorReply), res
    assert res.status == 400
    assert res.body["error"]["status"] == "INVALID_ARGUMENT"
    assert fragment in res.body["error"]["message"]
