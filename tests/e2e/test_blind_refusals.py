"""Refusals: every provider refusal signal the simulator can produce is read by caller_svc as the
``refusal`` outcome (the design brief: "200 OK whose answer is a refusal (provider signal or
semantic detection)" → refusal), and a refusal on the primary is answered by the next backend,
end to end through the router, for a text refusal and for provider signals."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from caller_svc.refusal import RefusalDetector
from tests.stack import ROOT, Links, Stack, running_stack, task
from uniwizard.convert import outcome_from_pb, request_to_pb, task_to_pb
from uniwizard.types import Attachment, Outcome, Task
from uniwizard.v1 import caller_pb2, router_pb2

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROME = "Who was the first emperor of Rome?"  # knowledge → gpt first
REVIEW = "Analyze the trade-offs between event sourcing and CRUD for our inventory service"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
GEMINI_REASONS = ("SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, stack_links: Links
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("refusals"), links=stack_links) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(stack: Stack) -> None:
    stack.sim.clear_faults()
    stack.sim.state.requests.clear()


# (id, backend, fault, a pattern for the signal named in the outcome's detail)
SIGNALS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "openai-message.refusal",
        "gpt",
        {"kind": "refusal_signal"},
        r"^openai (message|delta)\.refusal",
    ),
    (
        "openai-finish_reason-content_filter",
        "gpt",
        {"kind": "refusal_signal", "finish_reason": "content_filter"},
        "finish_reason=content_filter",
    ),
    (
        "openai_compatible-message.refusal",
        "kimi",
        {"kind": "refusal_signal"},
        r"^openai_compatible (message|delta)\.refusal",
    ),
    ("anthropic-stop_reason-refusal", "claude", {"kind": "refusal_signal"}, "stop_reason=refusal"),
    *[
        (
            f"gemini-finishReason-{r}",
            "gemini",
            {"kind": "refusal_signal", "reason": r},
            f"finishReason={r}",
        )
        for r in GEMINI_REASONS
    ],
    (
        "gemini-promptFeedback.blockReason",
        "gemini",
        {"kind": "content_filter"},
        "promptFeedback.blockReason=SAFETY",
    ),
]


async def call(stack: Stack, key: str, stream: bool) -> tuple[caller_pb2.CallResult, list[str]]:
    req = caller_pb2.CallRequest(backend=key, request=request_to_pb(task(ROME).request))
    if not stream:
        return await stack.caller_stub.Call(req, timeout=10), []
    events = [e async for e in stack.caller_stub.CallStream(req, timeout=10)]
    assert events[-1].WhichOneof("event") == "result"
    return events[-1].result, [e.text_delta for e in events[:-1]]


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize(
    ("key", "fault", "signal"), [s[1:] for s in SIGNALS], ids=[s[0] for s in SIGNALS]
)
async def test_every_provider_refusal_signal_is_a_refusal(
    stack: Stack, key: str, fault: dict[str, Any], signal: str, stream: bool
) -> None:
    stack.sim.add_fault(key, fault, times=1)
    result, deltas = await call(stack, key, stream)
    assert outcome_from_pb(result.outcome) is Outcome.REFUSAL, result.error_message
    # The provider's own signal decided (unary: message.refusal, stream: delta.refusal), not text.
    assert re.search(signal, result.error_message), result.error_message
    assert result.http_status == 200
    assert deltas == []  # nothing of a refused answer is forwarded
    (record,) = stack.sim.requests(key)
    assert record["fault"] == fault["kind"] and record["status"] == 200


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("key", ["gpt", "claude", "gemini", "grok"])
async def test_a_text_refusal_is_a_refusal(stack: Stack, key: str, stream: bool) -> None:
    stack.sim.add_fault(key, {"kind": "refusal_text", "text": "I must decline this request."}, 1)
    result, deltas = await call(stack, key, stream)
    assert outcome_from_pb(result.outcome) is Outcome.REFUSAL
    assert result.error_message.startswith("semantic refusal")
    assert deltas == []


def outcomes(result: Any) -> list[tuple[str, str]]:
    return [(a.backend, outcome_from_pb(a.outcome).value) for a in result.attempts]


def image_task(text: str) -> Task:
    return task(text, attachments=(Attachment("photo.png", "image/png", PNG),))


# (id, task, primary, fault on the primary)
REROUTES: list[tuple[str, Task, str, dict[str, Any]]] = [
    ("gpt-text", task(ROME), "gpt", {"kind": "refusal_text"}),
    ("gpt-message.refusal", task(ROME), "gpt", {"kind": "refusal_signal"}),
    ("claude-text", task(REVIEW), "claude", {"kind": "refusal_text"}),
    ("claude-stop_reason", task(REVIEW), "claude", {"kind": "refusal_signal"}),
    ("gemini-text", image_task("What is in this picture?"), "gemini", {"kind": "refusal_text"}),
    (
        "gemini-RECITATION",
        image_task("What is in this picture?"),
        "gemini",
        {"kind": "refusal_signal", "reason": "RECITATION"},
    ),
    (
        "gemini-blockReason",
        image_task("What is in this picture?"),
        "gemini",
        {"kind": "content_filter"},
    ),
]


@pytest.mark.parametrize(
    ("t", "primary", "fault"), [r[1:] for r in REROUTES], ids=[r[0] for r in REROUTES]
)
async def test_a_refusal_on_the_primary_is_answered_by_the_next_backend(
    stack: Stack, t: Task, primary: str, fault: dict[str, Any]
) -> None:
    stack.sim.add_fault(primary, fault, times=1)
    result = await stack.dispatch(t)
    assert result.decision.chain[0] == primary
    nxt = result.decision.chain[1]
    assert outcomes(result) == [(primary, "refusal"), (nxt, "success")]
    assert result.backend == nxt
    assert result.text.startswith("Simulated answer from ")
    assert not RefusalDetector().detect(result.text).is_refusal
    assert [r["target"] for r in stack.sim.requests()] == [primary, nxt]


@pytest.mark.parametrize(
    ("t", "primary", "fault"), [r[1:] for r in REROUTES], ids=[r[0] for r in REROUTES]
)
async def test_a_refusal_on_the_primary_is_answered_by_the_next_backend_streamed(
    stack: Stack, t: Task, primary: str, fault: dict[str, Any]
) -> None:
    stack.sim.add_fault(primary, fault, times=1)
    events = [
        e
        async for e in stack.router_stub.DispatchStream(
            router_pb2.DispatchRequest(task=task_to_pb(t)), timeout=20
        )
    ]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "decision" and kinds[-1] == "done"
    text = "".join(e.text_delta for e in events if e.WhichOneof("event") == "text_delta")
    done = events[-1].done
    assert done.backend == events[0].decision.chain[1] != primary
    assert outcomes(done)[0] == (primary, "refusal")
    assert text.startswith("Simulated answer from ")  # only the second backend's words
    assert "sorry" not in text.lower()


async def test_refusal_detector_precision_and_recall() -> None:
    rows = [
        json.loads(line)
        for line in (ROOT / "tests" / "data" / "refusals.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    detector = RefusalDetector()
    tp = fp = fn = tn = 0
    for row in rows:
        said = detector.detect(row["text"]).is_refusal
        if said and row["refusal"]:
            tp += 1
        elif said:
            fp += 1
        elif row["refusal"]:
            fn += 1
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(
        f"\nrefusal detector over {len(rows)} labeled answers: precision={precision:.3f} "
        f"recall={recall:.3f} (tp={tp} fp={fp} fn={fn} tn={tn})"
    )
    assert len(rows) >= 100
    assert precision >= 0.98 and recall >= 0.95
