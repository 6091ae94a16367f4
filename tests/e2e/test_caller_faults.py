"""Every fault the simulator can inject, through the running caller_svc (Call and CallStream), maps
to the outcome class the design brief names. Provider-specific wire shapes are covered by
parametrizing over one backend per dialect: gpt (OpenAI), claude (Anthropic), gemini (Gemini).

Timeouts are shortened with ``tweak=`` so the waits stay small: whole call 0.8 s, first token and
stream idle 0.4 s.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.stack import Links, Stack, running_stack, task
from uniwizard.config_types import BackendConfig
from uniwizard.convert import outcome_from_pb, request_to_pb
from uniwizard.v1 import caller_pb2
from uniwizard_sim.faults import KINDS

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROME = "Who was the first emperor of Rome?"
TIMEOUT, FIRST_TOKEN, IDLE = 0.8, 0.4, 0.4
PROVIDERS = ("gpt", "claude", "gemini")  # openai-style, anthropic, gemini
UNARY, STREAM = "unary", "stream"
BOTH = (UNARY, STREAM)


def quick(b: BackendConfig) -> BackendConfig:
    return dataclasses.replace(
        b, timeout=TIMEOUT, first_token_timeout=FIRST_TOKEN, stream_idle_timeout=IDLE
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, stack_links: Links
) -> AsyncIterator[Stack]:
    async with running_stack(
        tmp_path_factory.mktemp("faults"), tweak=quick, links=stack_links
    ) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(stack: Stack) -> None:
    stack.sim.clear_faults()
    stack.sim.state.requests.clear()


async def attempt(
    stack: Stack, key: str, mode: str, text: str = ROME
) -> tuple[caller_pb2.CallResult, list[caller_pb2.CallEvent], float]:
    req = caller_pb2.CallRequest(backend=key, request=request_to_pb(task(text).request))
    started = time.monotonic()
    if mode == UNARY:
        result = await stack.caller_stub.Call(req, timeout=15)
        return result, [], time.monotonic() - started
    events = [e async for e in stack.caller_stub.CallStream(req, timeout=15)]
    elapsed = time.monotonic() - started
    assert events and events[-1].WhichOneof("event") == "result"
    assert [e.WhichOneof("event") for e in events].count("result") == 1
    return events[-1].result, events[:-1], elapsed


def outcome(result: caller_pb2.CallResult) -> str:
    o = outcome_from_pb(result.outcome)
    assert o is not None
    return o.value


# (case id, fault, {backend: expected outcome}, modes)
Case = tuple[str, dict[str, Any], dict[str, str], tuple[str, ...]]


def every(expected: str, keys: tuple[str, ...] = PROVIDERS) -> dict[str, str]:
    return dict.fromkeys(keys, expected)


CASES: list[Case] = [
    (
        "429-retry-after",
        {"kind": "status", "status": 429, "retry_after": 3},
        every("rate_limited"),
        BOTH,
    ),
    (
        "429-retry-after-ms",
        {"kind": "status", "status": 429, "retry_after_ms": 1500},
        every("rate_limited"),
        BOTH,
    ),
    ("529-overloaded", {"kind": "status", "status": 529}, {"claude": "overloaded"}, BOTH),
    ("503", {"kind": "status", "status": 503}, every("overloaded"), BOTH),
    ("500", {"kind": "status", "status": 500}, every("server_error"), BOTH),
    ("502", {"kind": "status", "status": 502}, every("server_error", ("gpt", "claude")), BOTH),
    # Anthropic's 504 is its timeout_error and Gemini's DEADLINE_EXCEEDED: their adapters map
    # those to timeout (the provider gave up on its own deadline), so 504 is checked on gpt only.
    ("504", {"kind": "status", "status": 504}, every("server_error", ("gpt",)), BOTH),
    ("401", {"kind": "status", "status": 401}, every("auth"), BOTH),
    ("403", {"kind": "status", "status": 403}, every("auth"), BOTH),
    (
        "400-context-length",
        {"kind": "status", "status": 400, "code": "context_length_exceeded"},
        every("context_window"),
        BOTH,
    ),
    ("400-other", {"kind": "status", "status": 400}, every("bad_request"), BOTH),
    ("422-other-4xx", {"kind": "status", "status": 422}, every("bad_request"), (UNARY,)),
    # OpenAI and Anthropic reject with a 400 policy error; Gemini blocks in-band with a 200 and
    # promptFeedback.blockReason, a provider refusal signal (see test_blind_refusals).
    (
        "content-filter",
        {"kind": "content_filter"},
        {"gpt": "content_policy", "claude": "content_policy", "gemini": "refusal"},
        BOTH,
    ),
    ("delay-beyond-timeout", {"kind": "delay", "seconds": 2}, every("timeout"), BOTH),
    ("hang", {"kind": "hang", "seconds": 5}, every("timeout"), BOTH),
    ("reset", {"kind": "reset"}, every("network"), BOTH),
    ("slow-first-token", {"kind": "slow_first_token", "seconds": 2}, every("timeout"), BOTH),
    ("stall", {"kind": "stall", "after_chunks": 1, "seconds": 5}, every("timeout"), BOTH),
    ("cut", {"kind": "cut", "after_chunks": 1}, every("truncated"), BOTH),
    ("malformed-chunk", {"kind": "malformed_chunk", "after_chunks": 1}, every("malformed"), BOTH),
    (
        "in-stream-error-event",
        {"kind": "status", "status": 500, "after_chunks": 1},
        every("server_error"),
        (STREAM,),
    ),
    (
        "in-stream-overloaded-event",
        {"kind": "status", "status": 529, "after_chunks": 1},
        {"claude": "overloaded"},
        (STREAM,),
    ),
    ("empty", {"kind": "empty"}, every("empty"), BOTH),
    ("refusal-text", {"kind": "refusal_text"}, every("refusal"), BOTH),
    ("refusal-signal", {"kind": "refusal_signal"}, every("refusal"), BOTH),
    (
        "refusal-signal-content-filter",
        {"kind": "refusal_signal", "finish_reason": "content_filter"},
        every("refusal"),
        BOTH,
    ),
]


def _params() -> list[Any]:
    out = []
    for case_id, fault, expected, modes in CASES:
        for key, want in expected.items():
            for mode in modes:
                out.append(pytest.param(key, mode, fault, want, id=f"{case_id}-{key}-{mode}"))
    return out


async def test_every_fault_kind_is_covered() -> None:
    covered = {c[1]["kind"] for c in CASES} | {"no_done", "truncated", "slow_stream", "text"}
    assert covered == KINDS


@pytest.mark.parametrize(("key", "mode", "fault", "expected"), _params())
async def test_fault_maps_to_its_outcome_class(
    stack: Stack, key: str, mode: str, fault: dict[str, Any], expected: str
) -> None:
    stack.sim.add_fault(key, fault, times=1)
    result, deltas, elapsed = await attempt(stack, key, mode)
    assert outcome(result) == expected, (result.error_message, result.http_status)
    assert result.backend == key
    seen = stack.sim.requests(key)
    assert len(seen) == 1 and seen[0]["fault"] == fault["kind"]  # the fault really fired
    if expected != "success":
        assert result.error_message  # always a reason, never prompt text
        assert ROME not in result.error_message
    if expected not in ("success", "refusal"):
        # Nothing of a failed answer is forwarded: the held-back opening is dropped.
        assert deltas == []
        assert result.text == ""

    if fault["kind"] == "status" and fault.get("after_chunks") is None:
        assert result.http_status == fault["status"]
    if expected == "rate_limited":
        want = fault.get("retry_after", (fault.get("retry_after_ms") or 0) / 1000)
        assert result.retry_after_s == pytest.approx(want)
    if expected == "timeout":
        # Bounded by the configured timeouts: first token / idle on a stream, the whole call
        # otherwise — never by the fault's own (longer) duration.
        limit = TIMEOUT if mode == UNARY else FIRST_TOKEN + IDLE
        assert elapsed < limit + 0.8, elapsed
        assert elapsed >= (TIMEOUT if mode == UNARY else FIRST_TOKEN) - 0.05, elapsed
    if expected in ("refusal", "empty"):
        assert result.http_status == 200
        assert result.usage.input_tokens > 0


async def test_gemini_502_is_a_server_error(stack: Stack) -> None:
    stack.sim.add_fault("gemini", {"kind": "status", "status": 502}, times=1)
    result, _, _ = await attempt(stack, "gemini", UNARY)
    assert outcome(result) == "server_error"


@pytest.mark.parametrize("mode", BOTH)
@pytest.mark.parametrize("key", PROVIDERS)
async def test_no_done_is_a_complete_answer_with_usage(stack: Stack, key: str, mode: str) -> None:
    stack.sim.add_fault(key, {"kind": "no_done"}, times=1)
    result, deltas, _ = await attempt(stack, key, mode)
    assert outcome(result) == "success", result.error_message
    assert result.text.startswith("Simulated answer from ")
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert not result.usage.estimated
    if mode == STREAM:
        assert "".join(d.text_delta for d in deltas) == result.text


@pytest.mark.parametrize("mode", BOTH)
@pytest.mark.parametrize("key", PROVIDERS)
async def test_truncated_is_a_success_with_finish_reason_length(
    stack: Stack, key: str, mode: str
) -> None:
    """core._finish classifies an answer the provider itself ended at its token limit as a
    success whose finish_reason is ``length`` (the text is usable, the caller can see it was cut);
    ``truncated`` is reserved for a transport-level cut (a stream or body that broke off)."""
    stack.sim.add_fault(key, {"kind": "truncated"}, times=1)
    result, deltas, _ = await attempt(stack, key, mode)
    assert outcome(result) == "success", result.error_message
    assert result.finish_reason == "length"
    assert result.text and result.usage.output_tokens > 0
    full, _, _ = await attempt(stack, key, UNARY)
    assert full.text.startswith(result.text) and len(result.text) < len(full.text)
    if mode == STREAM:
        assert "".join(d.text_delta for d in deltas) == result.text


@pytest.mark.parametrize("mode", BOTH)
async def test_slow_stream_within_the_idle_timeout_succeeds(stack: Stack, mode: str) -> None:
    stack.sim.add_fault("gpt", {"kind": "slow_stream", "seconds": 0.05}, times=1)
    result, _, _ = await attempt(stack, "gpt", mode)
    assert outcome(result) == "success"


async def test_slow_stream_beyond_the_idle_timeout_times_out(stack: Stack) -> None:
    stack.sim.add_fault("gpt", {"kind": "slow_stream", "seconds": 1.0}, times=1)
    result, deltas, elapsed = await attempt(stack, "gpt", STREAM)
    assert outcome(result) == "timeout"
    # The first event carries no text (the role), so the wait for the next one may count as
    # "no first token" or "stream stalled"; either way it is the 0.4 s limit, not the 1 s gap.
    assert "stalled" in result.error_message or "first token" in result.error_message
    assert deltas == []
    assert elapsed < TIMEOUT + 0.5


@pytest.mark.parametrize("mode", BOTH)
@pytest.mark.parametrize("key", PROVIDERS)
async def test_a_text_fault_is_answered_verbatim(stack: Stack, key: str, mode: str) -> None:
    stack.sim.add_fault(key, {"kind": "text", "text": "Augustus was the first emperor."}, times=1)
    result, _, _ = await attempt(stack, key, mode)
    assert outcome(result) == "success"
    assert result.text == "Augustus was the first emperor."


async def test_a_late_cut_after_forwarding_ends_typed_not_clean(stack: Stack) -> None:
    """A stream cut after the held-back opening was already forwarded still ends with a typed
    failure, never a clean end (the design brief)."""
    stack.sim.add_fault("gpt", {"kind": "cut", "after_chunks": 25}, times=1)
    result, deltas, _ = await attempt(stack, "gpt", STREAM)
    assert deltas, "the opening was forwarded before the cut"
    assert outcome(result) == "truncated"
    assert result.usage.estimated and result.cost_source == "estimated"
