"""The official google-genai SDK as a client of the simulator."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from uniwizard_sim.app import RunningSimulator
from uniwizard_sim.textgen import answer_text, count_prompt_tokens, count_tokens

MODEL = "gemini-2.5-flash"
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


def client(sim: RunningSimulator, target: str = "gemini") -> genai.Client:
    return genai.Client(
        api_key="g-test",
        http_options=types.HttpOptions(
            base_url=sim.sdk_base_url(target, "gemini"), api_version="v1beta", timeout=10_000
        ),
    )


async def test_generate_content(sim: RunningSimulator) -> None:
    c = client(sim)
    resp = await c.aio.models.generate_content(
        model=MODEL,
        contents="Summarize the plot of Hamlet.",
        config=types.GenerateContentConfig(system_instruction="Answer briefly."),
    )
    text = answer_text(MODEL, "Summarize the plot of Hamlet.", 0)
    assert resp.text == text
    assert resp.candidates is not None
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    usage = resp.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == count_prompt_tokens(
        ["Answer briefly.", "Summarize the plot of Hamlet."]
    )
    assert usage.candidates_token_count == count_tokens(text)
    assert usage.total_token_count == usage.prompt_token_count + count_tokens(text)
    assert resp.model_version == MODEL
    rec = sim.requests("gemini")[-1]
    assert rec["path"] == f"/gemini/v1beta/models/{MODEL}:generateContent"
    assert rec["headers"]["x-goog-api-key"] == "***"


async def test_generate_content_stream(sim: RunningSimulator) -> None:
    c = client(sim)
    pieces: list[str] = []
    last = None
    async for chunk in await c.aio.models.generate_content_stream(
        model=MODEL, contents="Stream a reply"
    ):
        if chunk.text:
            pieces.append(chunk.text)
        last = chunk
    text = answer_text(MODEL, "Stream a reply", 0)
    assert "".join(pieces) == text
    assert len(pieces) > 3
    assert last is not None and last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == count_tokens(text)
    assert sim.requests("gemini")[-1]["query"].get("alt") == "sse"


async def test_function_call(sim: RunningSimulator) -> None:
    c = client(sim)
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="Weather for a city",
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"city": types.Schema(type=types.Type.STRING)},
                    required=["city"],
                ),
            )
        ]
    )
    resp = await c.aio.models.generate_content(
        model=MODEL,
        contents="call get_weather for me",
        config=types.GenerateContentConfig(
            tools=[tool],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    calls = resp.function_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].args == {"city": "sim-city"}


async def test_inline_data_counted(sim: RunningSimulator) -> None:
    c = client(sim)
    resp = await c.aio.models.generate_content(
        model=MODEL,
        contents=[
            types.Part.from_bytes(data=b"\x89PNG fake", mime_type="image/png"),
            "What is this?",
        ],
    )
    assert "I saw 1 attachment" in (resp.text or "")


async def test_safety_finish_reason(sim: RunningSimulator) -> None:
    sim.add_fault("gemini", {"kind": "refusal_signal", "reason": "RECITATION"}, times=1)
    sim.add_fault("gemini", {"kind": "content_filter"}, times=1)
    c = client(sim)
    resp = await c.aio.models.generate_content(model=MODEL, contents="x")
    assert resp.candidates is not None
    assert resp.candidates[0].finish_reason == types.FinishReason.RECITATION
    assert resp.text is None
    blocked = await c.aio.models.generate_content(model=MODEL, contents="x")
    assert blocked.prompt_feedback is not None
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert not blocked.candidates


async def test_typed_errors(sim: RunningSimulator) -> None:
    sim.add_fault("gemini", {"kind": "status", "status": 429, "retry_after": 2}, times=1)
    sim.add_fault("gemini", {"kind": "status", "status": 503}, times=1)
    c = client(sim)
    with pytest.raises(errors.ClientError) as rl:
        await c.aio.models.generate_content(model=MODEL, contents="hi")
    assert rl.value.code == 429
    assert rl.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(errors.ServerError) as un:
        await c.aio.models.generate_content(model=MODEL, contents="hi")
    assert un.value.code == 503
    assert un.value.status == "UNAVAILABLE"


async def test_list_models(sim: RunningSimulator) -> None:
    c = client(sim)
    names = [m.name async for m in await c.aio.models.list()]
    assert f"models/{MODEL}" in names
