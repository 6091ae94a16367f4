"""Benign prompts (no identity material) pass through the whole stack byte-identical: the text
the simulator received is exactly the text the agent sent, in the message and the system prompt,
and the ledger records no redaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio

from tests.stack import ROOT, Links, Stack, running_stack
from uniwizard.types import BlindRequest, Message, Role, Task

pytestmark = pytest.mark.asyncio(loop_scope="module")

BENIGN: list[dict[str, str]] = [
    json.loads(line)
    for line in (ROOT / "tests" / "data" / "identity" / "benign.jsonl")
    .read_text("utf-8")
    .splitlines()
    if line.strip()
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, stack_links: Links
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("benign"), links=stack_links) as s:
        assert s.config.identity is not None  # the shipped identity guard is active
        yield s


def _text(content: Any, kinds: tuple[str, ...] = ("text",)) -> str:
    if isinstance(content, str):
        return content
    return "".join(p["text"] for p in content if p.get("type", "text") in kinds)


def received(provider: str, body: dict[str, Any]) -> tuple[str, str]:
    """(system prompt, last user message text) as the provider's wire format carried them."""
    if provider == "anthropic":
        system = body.get("system", "")
        return _text(system), _text(body["messages"][-1]["content"])
    if provider == "gemini":
        system = "".join(p["text"] for p in body.get("systemInstruction", {}).get("parts", []))
        return system, "".join(p.get("text", "") for p in body["contents"][-1]["parts"])
    msgs = body["messages"]
    system = _text(msgs[0]["content"]) if msgs[0]["role"] in ("system", "developer") else ""
    return system, _text(msgs[-1]["content"])


async def test_the_benign_set_is_large_enough() -> None:
    assert len(BENIGN) >= 100


@pytest.mark.parametrize("case", BENIGN, ids=lambda c: c["note"])
async def test_benign_prompt_arrives_byte_identical(stack: Stack, case: dict[str, str]) -> None:
    stack.sim.state.requests.clear()
    text = case["text"]
    rid = f"benign-{BENIGN.index(case)}"
    task = Task(
        request=BlindRequest(messages=(Message(Role.USER, text),), system_prompt=text),
        request_id=rid,
    )
    if not text.strip():
        # Nothing to pass through: the router refuses an empty task before any backend sees it.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.dispatch(task)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stack.sim.requests() == []
        return
    result = await stack.dispatch(task)
    assert result.text
    records = stack.sim.requests()
    assert len(records) == 1 and records[0]["status"] == 200
    record = records[0]
    provider = stack.config.backends[record["target"]].provider
    system, message = received(provider, record["body"])
    assert message == text
    assert system == text
    ledger = stack.caller.core.ledger  # type: ignore[attr-defined]
    rows = [r for r in await ledger.rows(limit=100_000) if r["request_id"] == rid]
    assert [r["identity_redactions"] for r in rows] == [0]
