"""Provider state that must survive a turn: a multi-turn tool conversation on a Gemini 3 model
(which rejects a replayed function call without its thought signature) through the client
library, the router, the caller and the simulator, unary and streamed."""

from __future__ import annotations

import dataclasses
import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.stack import Stack, running_stack
from uniwizard.types import BlindRequest, Message, Role, Task, ToolCall, ToolDef
from uniwizard_client import AsyncBackendRouter, ThinkResult, ToolCalled
from uniwizard_sim import gemini

GEMINI_3 = "gemini-3-pro-preview"
WEATHER = ToolDef(
    "get_weather",
    "The current weather in a city.",
    json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)
ASK = Message(Role.USER, "Use get_weather: is it raining in Lima?")
SIGNATURE = gemini.thought_signature("get_weather", {"city": "sim-city"})


def gemini_3(stack_tmp: Path) -> AbstractAsyncContextManager[Stack]:
    """The stack with the gemini backend on a Gemini 3 model (the one that checks)."""
    return running_stack(
        stack_tmp,
        tweak=lambda b: dataclasses.replace(b, model=GEMINI_3) if b.key == "gemini" else b,
    )


def turn(*messages: Message) -> Task:
    return Task(request=BlindRequest(messages=messages, tools=(WEATHER,)))


def replay(call: ToolCall) -> tuple[Message, Message]:
    """The assistant's tool call, as it came back, and the tool's result."""
    return (
        Message(Role.ASSISTANT, tool_calls=(call,)),
        Message(Role.TOOL, '{"sky": "clear"}', tool_call_id=call.id),
    )


def replayed_part(stack: Stack) -> dict[str, object]:
    """The function call part of the model turn in the last request the simulator got."""
    body = stack.sim.requests("gemini")[-1]["body"]
    model_turn = next(c for c in body["contents"] if c["role"] == "model")
    part = model_turn["parts"][0]
    assert isinstance(part, dict)
    return part


async def test_a_gemini_3_tool_conversation_round_trips_its_signature(tmp_path: Path) -> None:
    async with gemini_3(tmp_path) as stack:
        async with AsyncBackendRouter(stack.router.target, deadline=20) as router:
            first = await router.dispatch(turn(ASK), backend="gemini")
            (call,) = first.tool_calls
            assert (first.backend, first.model, call.name) == ("gemini", GEMINI_3, "get_weather")
            assert json.loads(call.provider_state) == {
                "provider": "gemini",
                "thought_signature": SIGNATURE,
            }
            second = await router.dispatch(turn(ASK, *replay(call)), backend="gemini")
            assert second.text and second.tool_calls == ()
            assert [a.outcome for a in second.attempts] == ["success"]
            part = replayed_part(stack)
            assert part["thoughtSignature"] == SIGNATURE  # back on the part it came with
            assert part["functionCall"] == {"name": "get_weather", "args": {"city": "sim-city"}}


async def test_the_same_conversation_streamed(tmp_path: Path) -> None:
    async with gemini_3(tmp_path) as stack:
        async with AsyncBackendRouter(stack.router.target, deadline=20) as router:
            events = [e async for e in router.dispatch_stream(turn(ASK), backend="gemini")]
            (called,) = [e for e in events if isinstance(e, ToolCalled)]
            result = events[-1]
            assert isinstance(result, ThinkResult) and result.tool_calls == (called.call,)
            assert json.loads(called.call.provider_state)["thought_signature"] == SIGNATURE
            events = [
                e
                async for e in router.dispatch_stream(
                    turn(ASK, *replay(called.call)), backend="gemini"
                )
            ]
            final = events[-1]
            assert isinstance(final, ThinkResult) and final.text
            assert replayed_part(stack)["thoughtSignature"] == SIGNATURE


async def test_a_call_without_gemini_state_goes_back_with_the_documented_bypass(
    tmp_path: Path,
) -> None:
    """A tool call another provider made (or whose state was dropped) has no signature: the
    adapter sends Gemini's documented bypass value instead, so Gemini 3 takes the turn."""
    foreign = ToolCall("toolu_01", "get_weather", '{"city": "sim-city"}', provider_state="")
    claude_state = json.dumps({"provider": "anthropic", "thinking": []})
    async with gemini_3(tmp_path) as stack:
        async with AsyncBackendRouter(stack.router.target, deadline=20) as router:
            for call in (foreign, dataclasses.replace(foreign, provider_state=claude_state)):
                answer = await router.dispatch(turn(ASK, *replay(call)), backend="gemini")
                assert answer.text
                bypass = replayed_part(stack)["thoughtSignature"]
                assert bypass == "skip_thought_signature_validator"
