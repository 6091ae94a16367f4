"""The official openai SDK as a client of the simulator."""

from __future__ import annotations

import json

import openai
import pytest

from uniwizard_sim.app import RunningSimulator
from uniwizard_sim.textgen import answer_text, count_prompt_tokens, count_tokens

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["path"],
            },
        },
    }
]


def client(sim: RunningSimulator, target: str = "gpt") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=sim.base_url(target, "openai"), api_key="sk-test", max_retries=0, timeout=10
    )


async def test_plain_completion(sim: RunningSimulator) -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    async with client(sim) as c:
        resp = await c.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
    text = answer_text("gpt-4o", "What is the capital of France?", 0)
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o"
    choice = resp.choices[0]
    assert choice.message.content == text
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == count_prompt_tokens(
        ["Be brief.", "What is the capital of France?"]
    )
    assert resp.usage.completion_tokens == count_tokens(text)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 0


async def test_streamed_completion_with_usage(sim: RunningSimulator) -> None:
    msgs = [{"role": "user", "content": "Tell me a story"}]
    async with client(sim) as c:
        stream = await c.chat.completions.create(
            model="gpt-4o-mini",
            messages=msgs,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        finishes: list[str] = []
        usage = None
        n = 0
        async for chunk in stream:
            n += 1
            assert chunk.object == "chat.completion.chunk"
            if chunk.usage is not None:
                usage = chunk.usage
                assert chunk.choices == []
            for ch in chunk.choices:
                if ch.delta.content:
                    parts.append(ch.delta.content)
                if ch.finish_reason:
                    finishes.append(ch.finish_reason)
    text = answer_text("gpt-4o-mini", "Tell me a story", 0)
    assert "".join(parts) == text
    assert len(parts) > 3
    assert finishes == ["stop"]
    assert usage is not None
    assert usage.prompt_tokens == count_tokens("Tell me a story")
    assert usage.completion_tokens == count_tokens(text)


async def test_tool_call(sim: RunningSimulator) -> None:
    msgs = [{"role": "user", "content": "Please use read_file on the notes."}]
    async with client(sim) as c:
        resp = await c.chat.completions.create(
            model="gpt-4o",
            messages=msgs,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
        )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "read_file"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"path": "sim-path"}  # type: ignore[union-attr]


async def test_streamed_tool_call(sim: RunningSimulator) -> None:
    msgs = [{"role": "user", "content": "call read_file now"}]
    async with client(sim) as c:
        stream = await c.chat.completions.create(
            model="gpt-4o",
            messages=msgs,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
        )
        name = ""
        args = ""
        finish = None
        async for chunk in stream:
            for ch in chunk.choices:
                for tc in ch.delta.tool_calls or []:
                    if tc.function and tc.function.name:
                        name += tc.function.name
                    if tc.function and tc.function.arguments:
                        args += tc.function.arguments
                finish = ch.finish_reason or finish
    assert name == "read_file"
    assert json.loads(args) == {"path": "sim-path"}
    assert finish == "tool_calls"


async def test_stream_helper_accumulates(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        async with c.chat.completions.stream(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream_options={"include_usage": True},
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
    assert final.choices[0].message.content == answer_text("gpt-4o", "hi", 0)
    assert final.usage is not None and final.usage.prompt_tokens == 1


async def test_image_and_audio_attachments_counted(sim: RunningSimulator) -> None:
    content = [
        {"type": "text", "text": "What is in this picture and clip?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    async with client(sim) as c:
        resp = await c.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": content}],  # type: ignore[arg-type,misc]
        )
    assert "I saw 2 attachments" in (resp.choices[0].message.content or "")


async def test_refusal_signal_parsed(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "refusal_signal"}, times=1)
    async with client(sim) as c:
        resp = await c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    msg = resp.choices[0].message
    assert msg.content is None
    assert msg.refusal == "I'm sorry, but I can't help with that request."


async def test_typed_errors(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "status", "status": 429, "retry_after": 7}, times=1)
    sim.add_fault("gpt", {"kind": "status", "status": 500}, times=1)
    sim.add_fault(
        "gpt", {"kind": "status", "status": 400, "code": "context_length_exceeded"}, times=1
    )
    msgs = [{"role": "user", "content": "hi"}]
    async with client(sim) as c:
        with pytest.raises(openai.RateLimitError) as rl:
            await c.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
        assert rl.value.status_code == 429
        assert rl.value.response.headers["retry-after"] == "7"
        assert rl.value.code == "rate_limit_exceeded"
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError) as br:
            await c.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
        assert br.value.code == "context_length_exceeded"
        # faults used up: normal again
        ok = await c.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
        assert ok.choices[0].finish_reason == "stop"


async def test_auth_and_validation_errors(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "status", "status": 401}, times=1)
    async with client(sim) as c:
        with pytest.raises(openai.AuthenticationError) as auth:
            await c.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
        assert auth.value.code == "invalid_api_key"
        with pytest.raises(openai.BadRequestError) as exc:
            await c.chat.completions.create(model="gpt-4o", messages=[])
        assert exc.value.code == "empty_array"
        assert exc.value.param == "messages"


async def test_models_listing_and_local_without_auth(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        page = await c.models.list()
        ids = [m.id async for m in page]
    assert "gpt-4o" in ids
    async with openai.AsyncOpenAI(
        base_url=sim.base_url("local", "openai_compatible"), api_key="none", max_retries=0
    ) as c:
        resp = await c.chat.completions.create(
            model="hermes-4-14b", messages=[{"role": "user", "content": "hi"}]
        )
    assert resp.choices[0].message.content
