"""Structured output through the official openai, anthropic and google-genai SDKs."""

from __future__ import annotations

import json
from typing import Any, Literal, cast

import anthropic
import jsonschema
import openai
import pytest
from anthropic.types import JSONOutputFormatParam, OutputConfigParam
from google import genai
from google.genai import errors, types
from pydantic import BaseModel, Field

from uniwizard_sim.app import RunningSimulator
from uniwizard_sim.textgen import answer_lead, answer_text, count_tokens

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)
ASK = [{"role": "user", "content": "Describe the room."}]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "exits": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "size": {"type": "integer", "minimum": 3},
        "lit": {"type": "boolean"},
        "mood": {"enum": ["calm", "tense"]},
        "owner": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["title", "exits", "size", "lit", "mood", "owner"],
    "additionalProperties": False,
}


class Exit(BaseModel):
    direction: Literal["north", "south", "east", "west"]
    locked: bool


class Door(BaseModel):
    exit: Exit
    keys: list[str]


class Room(BaseModel):
    title: str
    doors: list[Door] = Field(min_length=1)
    depth: int
    weight: float
    mood: Literal["calm", "tense"]
    owner: str | None
    note: str | None = None


def check_room(room: Room | None, model: str) -> None:
    assert isinstance(room, Room)
    assert room.title == answer_lead(model, "Describe the room.")
    assert room.doors[0].exit.direction == "north" and room.doors[0].keys
    assert room.mood == "calm"


# -- openai ---------------------------------------------------------------------------------


def oa_client(sim: RunningSimulator, target: str = "gpt", provider: str = "openai") -> Any:
    return openai.AsyncOpenAI(
        base_url=sim.base_url(target, provider), api_key="sk-test", max_retries=0, timeout=10
    )


async def test_openai_json_object(sim: RunningSimulator) -> None:
    for target, provider in (("gpt", "openai"), ("local", "openai_compatible")):
        async with oa_client(sim, target, provider) as c:
            resp = await c.chat.completions.create(
                model="gpt-4o", messages=ASK, response_format={"type": "json_object"}
            )
        content = resp.choices[0].message.content
        assert json.loads(content) == {"answer": answer_text("gpt-4o", "Describe the room.", 0)}
        assert resp.usage is not None
        assert resp.usage.completion_tokens == count_tokens(content)


async def test_openai_parse_pydantic(sim: RunningSimulator) -> None:
    async with oa_client(sim) as c:
        resp = await c.chat.completions.parse(model="gpt-4o", messages=ASK, response_format=Room)
    msg = resp.choices[0].message
    check_room(msg.parsed, "gpt-4o")
    assert msg.parsed is not None and msg.parsed.owner is not None  # strict: all required
    sent = sim.requests("gpt")[-1]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert resp.usage is not None
    assert resp.usage.completion_tokens == count_tokens(msg.content or "")


async def test_openai_streamed_json_schema(sim: RunningSimulator) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "room", "schema": SCHEMA, "strict": True}}
    async with oa_client(sim) as c:
        stream = await c.chat.completions.create(
            model="gpt-4o",
            messages=ASK,
            response_format=fmt,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage = None
        async for chunk in stream:
            usage = chunk.usage or usage
            pieces += [ch.delta.content for ch in chunk.choices if ch.delta.content]
    assert len(pieces) > 3
    text = "".join(pieces)
    jsonschema.validate(json.loads(text), SCHEMA)
    assert usage is not None and usage.completion_tokens == count_tokens(text)


async def test_openai_malformed_response_format(sim: RunningSimulator) -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    async with oa_client(sim) as c:
        with pytest.raises(openai.BadRequestError) as exc:
            await c.chat.completions.create(
                model="gpt-4o",
                messages=ASK,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": loose, "strict": True},
                },
            )
        assert exc.value.param == "response_format"
        assert "Invalid schema for response_format 'a'" in exc.value.message
        with pytest.raises(openai.BadRequestError) as bad_type:
            await c.chat.completions.create(
                model="gpt-4o",
                messages=ASK,
                response_format={"type": "xml"},
            )
        assert bad_type.value.param == "response_format.type"
        assert bad_type.value.code == "invalid_value"


# -- anthropic ------------------------------------------------------------------------------


def an_client(sim: RunningSimulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=sim.sdk_base_url("claude", "anthropic"),
        api_key="sk-ant-test",
        max_retries=0,
        timeout=10,
    )


async def test_anthropic_output_config(sim: RunningSimulator) -> None:
    fmt: JSONOutputFormatParam = {"type": "json_schema", "schema": SCHEMA}
    config: OutputConfigParam = {"format": fmt, "effort": "low"}
    async with an_client(sim) as c:
        msg = await c.messages.create(
            model="claude-x",
            max_tokens=1024,
            messages=ASK,  # type: ignore[arg-type]
            output_config=config,
        )
        async with c.messages.stream(
            model="claude-x",
            max_tokens=1024,
            messages=ASK,  # type: ignore[arg-type]
            output_config={"format": fmt},
        ) as stream:
            pieces = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
    assert len(msg.content) == 1 and msg.content[0].type == "text"
    text = msg.content[0].text
    jsonschema.validate(json.loads(text), SCHEMA)
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == count_tokens(text)
    assert "".join(pieces) == text and len(pieces) > 3
    assert final.usage.output_tokens == count_tokens(text)


async def test_anthropic_parse_and_beta_form(sim: RunningSimulator) -> None:
    async with an_client(sim) as c:
        parsed = await c.messages.parse(
            model="claude-x",
            max_tokens=1024,
            messages=ASK,  # type: ignore[arg-type]
            output_format=Room,
        )
        check_room(parsed.parsed_output, "claude-x")
        beta = await c.messages.create(
            model="claude-x",
            max_tokens=1024,
            messages=ASK,  # type: ignore[arg-type]
            extra_body={"output_format": {"type": "json_schema", "schema": SCHEMA}},
        )
        jsonschema.validate(json.loads(beta.content[0].text), SCHEMA)  # type: ignore[union-attr]
        with pytest.raises(anthropic.BadRequestError) as exc:
            await c.messages.create(
                model="claude-x",
                max_tokens=1024,
                messages=ASK,  # type: ignore[arg-type]
                output_config=cast(Any, {"format": {"type": "json_schema"}}),
            )
    assert exc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "output_config.format.schema: Field required" in str(exc.value)


# -- google-genai ---------------------------------------------------------------------------

MODEL = "gemini-2.5-flash"


def gm_client(sim: RunningSimulator) -> genai.Client:
    return genai.Client(
        api_key="g-test",
        http_options=types.HttpOptions(
            base_url=sim.sdk_base_url("gemini", "gemini"), api_version="v1beta", timeout=10_000
        ),
    )


async def test_gemini_json_schema(sim: RunningSimulator) -> None:
    c = gm_client(sim)
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=SCHEMA
    )
    resp = await c.aio.models.generate_content(
        model=MODEL, contents="Describe the room.", config=config
    )
    jsonschema.validate(json.loads(resp.text or ""), SCHEMA)
    assert resp.parsed == json.loads(resp.text or "")
    assert resp.usage_metadata is not None
    assert resp.usage_metadata.candidates_token_count == count_tokens(resp.text or "")
    pieces = [
        chunk.text or ""
        async for chunk in await c.aio.models.generate_content_stream(
            model=MODEL, contents="Describe the room.", config=config
        )
    ]
    assert "".join(pieces) == resp.text and len(pieces) > 3


async def test_gemini_pydantic_schema_and_json_mode(sim: RunningSimulator) -> None:
    c = gm_client(sim)
    resp = await c.aio.models.generate_content(
        model=MODEL,
        contents="Describe the room.",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Room
        ),
    )
    sent = sim.requests("gemini")[-1]["body"]["generationConfig"]["responseSchema"]
    assert sent["type"] == "OBJECT"  # the SDK's OpenAPI form, upper-case types
    check_room(resp.parsed, MODEL)  # type: ignore[arg-type]
    plain = await c.aio.models.generate_content(
        model=MODEL,
        contents="Describe the room.",
        config=types.GenerateContentConfig(response_mime_type="application/json"),
    )
    assert json.loads(plain.text or "") == {"answer": answer_text(MODEL, "Describe the room.", 0)}


async def test_gemini_bad_mime_type(sim: RunningSimulator) -> None:
    c = gm_client(sim)
    with pytest.raises(errors.ClientError) as exc:
        await c.aio.models.generate_content(
            model=MODEL,
            contents="hi",
            config=types.GenerateContentConfig(response_mime_type="application/xml"),
        )
    assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
    assert "response_mime_type" in (exc.value.message or "")
