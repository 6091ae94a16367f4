"""Streaming dispatch on both client routers, against the real services on the simulator."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack
from uniwizard_client import (
    AsyncBackendRouter,
    AttemptFailed,
    BackendRouter,
    Routed,
    RouterError,
    StreamEvent,
    Task,
    TextDelta,
    ThinkResult,
    ToolCalled,
    ToolDef,
)

ROME = "Who was the first emperor of Rome?"
WEATHER = ToolDef(
    "get_weather",
    "The current weather in a city.",
    json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)
# The simulator answers with a call of a tool that the request offers and the prompt names.
TOOL_TASK = Task("Use get_weather to tell me if it rains in Paris.", tools=(WEATHER,))


def kinds(events: list[StreamEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def check_text_stream(events: list[StreamEvent]) -> ThinkResult:
    assert isinstance(events[0], Routed) and events[0].decision.backend == "gpt"
    result = events[-1]
    assert isinstance(result, ThinkResult)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas and kinds(events).index("TextDelta") < len(events) - 1
    assert result.text == "".join(deltas) and "Simulated answer" in result.text
    assert result.backend == "gpt" and result.category == "knowledge"
    assert [a.outcome for a in result.attempts] == ["success"]
    assert result.attempts[0].cost_source in ("provider", "estimated")
    assert result.cost_usd > 0 and len(result.trace_id) == 32 and result.tool_calls == ()
    return result


def check_tool_stream(events: list[StreamEvent]) -> None:
    calls = [e.call for e in events if isinstance(e, ToolCalled)]
    assert [c.name for c in calls] == ["get_weather"]
    assert calls[0].id and json.loads(calls[0].arguments_json) == {"city": "sim-city"}
    result = events[-1]
    assert isinstance(result, ThinkResult)
    assert kinds(events).index("ToolCalled") < len(events) - 1  # as it arrived, before the end
    assert result.tool_calls == tuple(calls)
    assert result.finish_reason == "tool_calls"


def check_fallback_stream(events: list[StreamEvent]) -> None:
    failed = [e.attempt for e in events if isinstance(e, AttemptFailed)]
    assert [(a.backend, a.outcome) for a in failed] == [("gpt", "refusal")]
    # the failed attempt is reported before any text: nothing of gpt's answer went out
    assert kinds(events).index("AttemptFailed") < kinds(events).index("TextDelta")
    result = events[-1]
    assert isinstance(result, ThinkResult) and result.backend != "gpt"
    assert [a.backend for a in result.attempts] == ["gpt", result.backend]


def check_failure(err: RouterError) -> None:
    assert err.outcome == "bad_request" and err.reported
    assert [(a.backend, a.outcome) for a in err.attempts] == [("local", "bad_request")]
    assert err.trace_id


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def cancelled_in_ledger(stack: Stack) -> bool:
    """Read the caller's ledger file with a connection of our own (committed rows only)."""
    with closing(sqlite3.connect(stack.tmp / "ledger.db")) as db:
        return [r[0] for r in db.execute("SELECT outcome FROM attempts")] == ["cancelled"]


def test_sync_stream_text_tool_calls_fallback_and_failure(threaded_stack: Stack) -> None:
    with BackendRouter(threaded_stack.router.target, deadline=20) as router:
        check_text_stream(list(router.dispatch_stream(ROME)))
        check_tool_stream(list(router.dispatch_stream(TOOL_TASK)))

        threaded_stack.sim.add_fault("gpt", {"kind": "refusal_text"}, times=1)
        check_fallback_stream(list(router.dispatch_stream(ROME)))

        threaded_stack.sim.add_fault("local", {"kind": "status", "status": 400})
        stream = router.dispatch_stream("What's the status of the job?", backend="local")
        with pytest.raises(RouterError) as err:
            for _ in stream:
                pass
        check_failure(err.value)


def test_closing_the_sync_stream_cancels_the_call(threaded_stack: Stack) -> None:
    threaded_stack.sim.add_fault("gpt", {"kind": "hang"}, times=1)
    with BackendRouter(threaded_stack.router.target, deadline=30) as router:
        stream = router.dispatch_stream(ROME)
        assert isinstance(next(stream), Routed)  # then gpt hangs: no text will come
        wait_for(lambda: bool(threaded_stack.sim.requests("gpt")))
        started = time.monotonic()
        stream.close()
        assert time.monotonic() - started < 2
        # the cancellation reached the caller: the attempt is in the ledger as cancelled
        wait_for(lambda: cancelled_in_ledger(threaded_stack))


async def test_async_stream_text_tool_calls_fallback_failure_and_cancel(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        async with AsyncBackendRouter(stack.router.target, deadline=20) as router:
            check_text_stream([e async for e in router.dispatch_stream(ROME)])
            check_tool_stream([e async for e in router.dispatch_stream(TOOL_TASK)])

            stack.sim.add_fault("gpt", {"kind": "refusal_text"}, times=1)
            check_fallback_stream([e async for e in router.dispatch_stream(ROME)])

            stack.sim.add_fault("local", {"kind": "status", "status": 400}, times=1)
            with pytest.raises(RouterError) as err:
                async for _ in router.dispatch_stream("What's the job status?", backend="local"):
                    pass
            check_failure(err.value)

            # aclose() cancels the call, and so does cancelling the task consuming the stream
            ledger = stack.caller.core.ledger  # the running caller's own ledger

            async def at_the_provider(requests_before: int) -> None:
                while len(stack.sim.requests("gpt")) == requests_before:
                    await asyncio.sleep(0.02)  # not yet at the provider

            async def ledger_says_cancelled() -> None:
                while (await ledger.rows())[-1]["outcome"] != "cancelled":
                    await asyncio.sleep(0.05)

            stack.sim.add_fault("gpt", {"kind": "hang"}, times=1)
            before = len(stack.sim.requests("gpt"))
            stream = router.dispatch_stream(ROME)
            assert isinstance(await anext(stream), Routed)  # then gpt hangs
            await asyncio.wait_for(at_the_provider(before), 10)
            await stream.aclose()
            await asyncio.wait_for(ledger_says_cancelled(), 10)

            stack.sim.add_fault("gpt", {"kind": "hang"}, times=1)
            before = len(stack.sim.requests("gpt"))
            routed = asyncio.Event()

            async def consume() -> None:
                async for event in router.dispatch_stream(ROME):
                    if isinstance(event, Routed):
                        routed.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(routed.wait(), 10)
            await asyncio.wait_for(at_the_provider(before), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(ledger_says_cancelled(), 10)
            assert [r["outcome"] for r in await ledger.rows()][-2:] == ["cancelled", "cancelled"]
