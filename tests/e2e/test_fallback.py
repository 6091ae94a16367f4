"""call_with_fallback against every way a provider misbehaves, each on a real dispatch through
the three services and the simulator."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status

from tests.stack import Stack, running_stack, task
from uniwizard.config_types import BackendConfig
from uniwizard.convert import outcome_from_pb, task_to_pb
from uniwizard.types import HealthState, Outcome
from uniwizard.v1 import router_pb2

ROME = "Who was the first emperor of Rome?"  # knowledge → gpt first


def outcomes(
    result: router_pb2.DispatchResult | router_pb2.DispatchFailure,
) -> list[tuple[str, str]]:
    return [(a.backend, outcome_from_pb(a.outcome).value) for a in result.attempts]  # type: ignore[union-attr]


def quick_timeouts(b: BackendConfig) -> BackendConfig:
    return dataclasses.replace(
        b,
        timeout=1.5,
        first_token_timeout=0.6,
        stream_idle_timeout=0.6,
        allowed_fails=3,
        cooldown_time=0.8,
    )


async def failure_of(call) -> tuple[grpc.StatusCode, router_pb2.DispatchFailure]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    status = rpc_status.from_call(err.value)
    assert status is not None, err.value.details()
    failure = router_pb2.DispatchFailure()
    assert status.details[0].Unpack(failure)
    return err.value.code(), failure


async def stream(
    stack: Stack, text: str
) -> tuple[list[router_pb2.DispatchEvent], grpc.aio.AioRpcError | None]:
    events: list[router_pb2.DispatchEvent] = []
    call = stack.router_stub.DispatchStream(
        router_pb2.DispatchRequest(task=task_to_pb(task(text))), timeout=20
    )
    try:
        async for ev in call:
            events.append(ev)
    except grpc.aio.AioRpcError as exc:
        return events, exc
    return events, None


def kinds(events: list[router_pb2.DispatchEvent]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


async def test_429_with_retry_after_is_honoured(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 429, "retry_after": 1}, times=1)
        started = time.monotonic()
        result = await stack.dispatch(task(ROME))
        assert outcomes(result) == [("gpt", "rate_limited"), ("gpt", "success")]
        assert time.monotonic() - started >= 1.0
        assert result.backend == "gpt"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"kind": "status", "status": 503}, [("gpt", "overloaded")]),
        (
            {"kind": "status", "status": 429, "retry_after": 0.2},
            [("gpt", "rate_limited"), ("gpt", "rate_limited")],
        ),
        ({"kind": "status", "status": 429, "retry_after": 30}, [("gpt", "rate_limited")]),
    ],
)
async def test_persistent_429_or_503_ends_in_bounded_attempts_and_a_fallback(
    tmp_path: Path,
    fault: dict,
    expected: list,  # type: ignore[type-arg]
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", fault)
        result = await stack.dispatch(task(ROME))
        assert outcomes(result)[:-1] == expected
        assert result.backend != "gpt" and outcomes(result)[-1] == (result.backend, "success")
        assert result.backend == result.decision.chain[1]


async def test_a_single_500_is_retried_and_succeeds(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 500}, times=1)
        result = await stack.dispatch(task(ROME))
        assert outcomes(result) == [("gpt", "server_error"), ("gpt", "success")]


async def test_a_reset_before_headers_is_retried(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "reset"}, times=1)
        result = await stack.dispatch(task(ROME))
        assert outcomes(result) == [("gpt", "network"), ("gpt", "success")]
        stack.sim.add_fault("gpt", {"kind": "reset"})
        result = await stack.dispatch(task(ROME))
        assert outcomes(result)[:2] == [("gpt", "network"), ("gpt", "network")]
        assert result.backend != "gpt"


async def test_a_provider_that_never_answers_is_abandoned_at_its_timeout_not_retried(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, tweak=quick_timeouts) as stack:
        stack.sim.add_fault("gpt", {"kind": "hang"})
        started = time.monotonic()
        result = await stack.dispatch(task(ROME))
        took = time.monotonic() - started
        assert outcomes(result)[0] == ("gpt", "timeout")
        assert len(stack.sim.requests("gpt")) == 1
        assert result.backend != "gpt"
        assert 1.4 <= took < 5


async def test_a_slow_first_token_fails_over_at_the_first_token_timeout(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tweak=quick_timeouts) as stack:
        stack.sim.add_fault("gpt", {"kind": "slow_first_token", "seconds": 5})
        started = time.monotonic()
        events, error = await stream(stack, ROME)
        assert error is None
        assert kinds(events)[0] == "decision"
        failed = [e.attempt_failed for e in events if e.WhichOneof("event") == "attempt_failed"]
        assert [(a.backend, outcome_from_pb(a.outcome).value) for a in failed] == [
            ("gpt", "timeout")
        ]
        assert events[-1].done.backend != "gpt"
        assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "cut", "after_chunks": 25},
        {"kind": "stall", "after_chunks": 25, "seconds": 30},
    ],
)
async def test_a_cut_or_stalled_stream_never_comes_back_as_a_complete_answer(
    tmp_path: Path,
    fault: dict,  # type: ignore[type-arg]
) -> None:
    async with running_stack(tmp_path, tweak=quick_timeouts) as stack:
        stack.sim.add_fault("gpt", fault)
        events, error = await stream(stack, ROME)
        text = "".join(e.text_delta for e in events if e.WhichOneof("event") == "text_delta")
        assert text, "part of the answer was forwarded before the cut"
        assert "done" not in kinds(events)
        assert error is not None
        _code, failure = await failure_of(_raise(error))
        assert outcome_from_pb(failure.outcome) in (Outcome.TRUNCATED, Outcome.TIMEOUT)
        assert "part of the answer was sent" in failure.message


async def _raise(error: grpc.aio.AioRpcError) -> None:
    raise error


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "cut", "after_chunks": 1},
        {"kind": "malformed_chunk", "after_chunks": 1},
    ],
)
async def test_an_early_broken_stream_fails_over_before_anything_is_forwarded(
    tmp_path: Path,
    fault: dict,  # type: ignore[type-arg]
) -> None:
    async with running_stack(tmp_path, tweak=quick_timeouts) as stack:
        stack.sim.add_fault("gpt", fault)
        events, error = await stream(stack, ROME)
        assert error is None
        failed = [e.attempt_failed for e in events if e.WhichOneof("event") == "attempt_failed"]
        assert [a.backend for a in failed] == ["gpt"]
        assert outcome_from_pb(failed[0].outcome) in (Outcome.TRUNCATED, Outcome.MALFORMED)
        assert events[-1].done.backend != "gpt"


async def test_a_malformed_body_ends_cleanly_with_a_fallback(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "malformed_chunk"})
        result = await stack.dispatch(task(ROME))
        assert outcomes(result)[0] == ("gpt", "malformed")
        assert result.backend != "gpt"


async def test_a_missing_done_still_finalises_promptly_with_usage(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "no_done"})
        started = time.monotonic()
        events, error = await stream(stack, ROME)
        assert error is None
        done = events[-1].done
        assert done.backend == "gpt"
        assert done.usage.output_tokens > 0 and not done.usage.estimated
        assert time.monotonic() - started < 2


async def test_a_context_length_error_goes_to_a_larger_backend_without_retrying(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault(
            "local", {"kind": "status", "status": 400, "code": "context_length_exceeded"}
        )
        t = task("What's the status of the nightly backup job?")
        result = await stack.dispatch(t)
        assert outcomes(result)[0] == ("local", "context_window")
        assert len(stack.sim.requests("local")) == 1
        assert stack.config.backends[result.backend].max_context > 8192


async def test_a_content_filter_rejection_is_propagated_without_retrying(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "content_filter"})
        code, failure = await failure_of(stack.dispatch(task(ROME)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert outcomes(failure) == [("gpt", "content_policy")]
        assert len(stack.sim.requests("gpt")) == 1


async def test_content_filter_can_be_configured_to_fall_over(tmp_path: Path) -> None:
    async with running_stack(tmp_path, content_policy="fallback") as stack:
        stack.sim.add_fault("gpt", {"kind": "content_filter"})
        result = await stack.dispatch(task(ROME))
        assert outcomes(result)[0] == ("gpt", "content_policy")
        assert result.backend != "gpt"


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "refusal_text"},
        {"kind": "refusal_signal"},
        {"kind": "refusal_signal", "finish_reason": "content_filter"},
    ],
)
async def test_a_refusal_in_a_200_is_rerouted(tmp_path: Path, fault: dict) -> None:  # type: ignore[type-arg]
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", fault)
        result = await stack.dispatch(task(ROME))
        assert outcomes(result)[0] == ("gpt", "refusal")
        assert result.backend == result.decision.chain[1]
        assert "sorry" not in result.text.lower()


async def test_a_refusal_on_a_stream_is_caught_in_the_held_back_opening(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "refusal_text"})
        events, error = await stream(stack, ROME)
        assert error is None
        text = "".join(e.text_delta for e in events if e.WhichOneof("event") == "text_delta")
        assert "sorry" not in text.lower()
        assert events[-1].done.backend != "gpt"


async def test_a_flapping_primary_is_cooled_down_served_around_and_returned_to(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, tweak=quick_timeouts) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 500}, times=5)
        first = await stack.dispatch(task(ROME))  # two 500s, then the next backend
        assert outcomes(first)[:2] == [("gpt", "server_error")] * 2
        second = await stack.dispatch(task(ROME))  # 500 and its retry: the breaker opens
        assert outcomes(second)[:2] == [("gpt", "server_error")] * 2
        await stack.wait_router(lambda v: v.health["gpt"].state is HealthState.COOLING_DOWN)
        served_around = await stack.dispatch(task(ROME))
        assert "gpt" not in [a.backend for a in served_around.attempts]
        # After the cooldown one trial goes through (the fault has one 500 left): it fails and
        # re-opens the breaker; after the next cooldown the trial succeeds and gpt is back.
        await stack.wait_router(lambda v: v.health["gpt"].state is HealthState.HALF_OPEN)
        trial = await stack.dispatch(task(ROME))
        assert outcomes(trial)[0] == ("gpt", "server_error")
        await stack.wait_router(lambda v: v.health["gpt"].state is HealthState.HALF_OPEN, timeout=5)
        back = await stack.dispatch(task(ROME))
        assert outcomes(back) == [("gpt", "success")]
        await stack.wait_router(lambda v: v.health["gpt"].state is HealthState.HEALTHY)
        assert len(stack.sim.requests("gpt")) == 6  # 5 failures + 1 success: bounded probing


async def test_a_private_task_never_reaches_a_cloud_backend(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.set_enabled("local", False)
        await stack.wait_router(lambda v: v.health["local"].state is HealthState.DISABLED)
        t = task("Summarize my medical notes", private=True)
        code, failure = await failure_of(stack.dispatch(t))
        assert code == grpc.StatusCode.UNAVAILABLE
        assert outcome_from_pb(failure.outcome) is Outcome.NO_BACKEND
        assert "private" in failure.message or "local" in failure.message
        assert list(failure.attempts) == []
        assert stack.sim.requests() == []


async def test_a_private_task_falls_back_only_to_private_backends(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("local", {"kind": "status", "status": 503})
        _code, failure = await failure_of(stack.dispatch(task("Read my diary", private=True)))
        assert {a.backend for a in failure.attempts} == {"local"}
        assert {r["target"] for r in stack.sim.requests()} == {"local"}


async def test_the_deadline_bounds_the_whole_dispatch(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("*", {"kind": "delay", "seconds": 5})
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.dispatch(task(ROME), timeout=1.0)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2.0
        await asyncio.sleep(0)
