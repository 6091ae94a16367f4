"""The official anthropic SDK as a client of the simulator."""

from __future__ import annotations

import anthropic
import pytest

from uniwizard_sim.app import RunningSimulator
from uniwizard_sim.textgen import answer_text, count_prompt_tokens, count_tokens

TOOLS = [
    {
        "name": "list_rooms",
        "description": "List rooms",
        "input_schema": {
            "type": "object",
            "properties": {"zone": {"type": "string"}, "deep": {"type": "boolean"}},
            "required": ["zone", "deep"],
        },
    }
]


def client(sim: RunningSimulator, target: str = "claude") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=sim.sdk_base_url(target, "anthropic"),
        api_key="sk-ant-test",
        max_retries=0,
        timeout=10,
    )


async def test_plain_message(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        msg = await c.messages.create(
            model="claude-sonnet-4-20250514",
            max_tokens=1024,
            system="You are terse.",
            messages=[{"role": "user", "content": "Explain recursion."}],
        )
    text = answer_text("claude-sonnet-4-20250514", "Explain recursion.", 0)
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.content[0].type == "text"
    assert msg.content[0].text == text
    assert msg.stop_reason == "end_turn"
    assert msg.stop_sequence is None
    assert msg.usage.input_tokens == count_prompt_tokens(["You are terse.", "Explain recursion."])
    assert msg.usage.output_tokens == count_tokens(text)
    assert msg.usage.cache_read_input_tokens == 0
    rec = sim.requests("claude")[-1]
    assert rec["path"] == "/claude/v1/messages"
    assert rec["headers"]["authorization"] == "***"
    assert rec["provider"] == "anthropic"


async def test_stream_helper(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        async with c.messages.stream(
            model="claude-x",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Stream please"}],
        ) as stream:
            pieces = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
    text = answer_text("claude-x", "Stream please", 0)
    assert "".join(pieces) == text
    assert len(pieces) > 3
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == count_tokens(text)
    assert final.usage.input_tokens == count_tokens("Stream please")


async def test_raw_stream_events(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        stream = await c.messages.create(
            model="claude-x",
            max_tokens=1024,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        types = [ev.type async for ev in stream]
    assert types[0] == "message_start"
    assert types[1] == "content_block_start"
    assert "content_block_delta" in types
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_tool_use(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        msg = await c.messages.create(
            model="claude-x",
            max_tokens=1024,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "Use list_rooms please"}],
        )
        async with c.messages.stream(
            model="claude-x",
            max_tokens=1024,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "Use list_rooms please"}],
        ) as stream:
            final = await stream.get_final_message()
    for m in (msg, final):
        assert m.stop_reason == "tool_use"
        block = m.content[0]
        assert block.type == "tool_use"
        assert block.name == "list_rooms"
        assert block.input == {"zone": "sim-zone", "deep": True}


async def test_image_block_counted(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        msg = await c.messages.create(
            model="claude-x",
            max_tokens=100,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                        },
                        {"type": "text", "text": "Describe this image in detail please."},
                    ],
                }
            ],
        )
    assert msg.stop_reason == "max_tokens" or "I saw 1 attachment" in msg.content[0].text  # type: ignore[union-attr]


async def test_max_tokens_truncates(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        msg = await c.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.output_tokens == 5


async def test_refusal_stop_reason(sim: RunningSimulator) -> None:
    sim.add_fault("claude", {"kind": "refusal_signal"}, times=2)
    async with client(sim) as c:
        msg = await c.messages.create(
            model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        )
        assert msg.stop_reason == "refusal"
        async with c.messages.stream(
            model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "refusal"


async def test_typed_errors(sim: RunningSimulator) -> None:
    sim.add_fault("claude", {"kind": "status", "status": 429, "retry_after": 3}, times=1)
    sim.add_fault("claude", {"kind": "status", "status": 529}, times=1)
    sim.add_fault(
        "claude", {"kind": "status", "status": 400, "code": "context_length_exceeded"}, times=1
    )
    sim.add_fault("claude", {"kind": "content_filter"}, times=1)
    msgs = [{"role": "user", "content": "hi"}]
    async with client(sim) as c:
        with pytest.raises(anthropic.RateLimitError) as rl:
            await c.messages.create(model="m", max_tokens=10, messages=msgs)  # type: ignore[arg-type]
        assert rl.value.response.headers["retry-after"] == "3"
        assert rl.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        with pytest.raises(anthropic.APIStatusError) as ov:
            await c.messages.create(model="m", max_tokens=10, messages=msgs)  # type: ignore[arg-type]
        assert ov.value.status_code == 529
        assert ov.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError) as ctx:
            await c.messages.create(model="m", max_tokens=10, messages=msgs)  # type: ignore[arg-type]
        assert "prompt is too long" in str(ctx.value)
        with pytest.raises(anthropic.BadRequestError) as cf:
            await c.messages.create(model="m", max_tokens=10, messages=msgs)  # type: ignore[arg-type]
        assert "content filtering" in str(cf.value)


async def test_validation_errors(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        with pytest.raises(anthropic.BadRequestError) as exc:
            await c.messages.create(
                model="m",
                max_tokens=10,
                messages=[{"role": "assistant", "content": "hi"}],
            )
        assert 'first message must use the "user" role' in str(exc.value)


async def test_models_list(sim: RunningSimulator) -> None:
    async with client(sim) as c:
        page = await c.models.list()
    ids = [m.id for m in page.data]
    assert "claude-sonnet-4-20250514" in ids
    assert sim.requests("claude")[-1]["provider"] == "anthropic"
