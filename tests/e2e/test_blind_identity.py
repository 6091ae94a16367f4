"""Blind cognition end to end: every leak attempt of tests/data/identity/leaks.jsonl goes through
the whole stack (router Dispatch → caller → simulator) and nothing identifying arrives.

The evidence is the simulator's request record: every JSON body it received, checked with the
project's own normaliser (``IdentityGuard.scan``) and with an independent naive check that knows
nothing of it (lower-case, keep only the letters a-z, look for the names and for any 8-word run of
``configs/soul.md``). Two modes:

* ``redact`` (the shipped configuration): the dispatch succeeds, the leak is replaced, the
  ledger row counts the redactions and holds no text;
* ``reject`` (``on_detect: reject``): the dispatch fails with ``identity_leak``
  (PERMISSION_DENIED with a typed DispatchFailure) and the simulator receives nothing at all.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_status import rpc_status

import tests.stack
from caller_svc.identity import IdentityGuard
from tests.stack import ROOT, Links, Stack, running_stack
from uniwizard.config import dump_config, load_config
from uniwizard.convert import outcome_from_pb, task_to_pb
from uniwizard.types import (
    Attachment,
    BlindRequest,
    Message,
    Outcome,
    Role,
    Task,
    ToolCall,
    ToolDef,
)
from uniwizard.v1 import router_pb2

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATA = ROOT / "tests" / "data" / "identity"
SOUL = ROOT / "configs" / "soul.md"
LEAKS: list[dict[str, str]] = [
    json.loads(line) for line in (DATA / "leaks.jsonl").read_text("utf-8").splitlines() if line
]
NAIVE_NAMES = ("timmy", "grandtimmy", "uniwizard")


def case_id(case: dict[str, str]) -> str:
    return f"{LEAKS.index(case)}-{case['where']}-{case['obfuscation']}"


# -- building a task with the payload in one place --------------------------------------------

USER = Message(Role.USER, "Please help with the task.")
LETTER_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"body": {"type": "string"}, "urgent": {"type": "boolean"}},
        "required": ["body"],
    }
)
SEND_LETTER = ToolDef("send_letter", "Send a letter.", LETTER_SCHEMA)


def _tool_turns(name: str = "send_letter", args: str = "{}", result: str = "done") -> tuple:
    """An assistant tool call and the tool's answer to it (valid for every provider)."""
    call = Message(Role.ASSISTANT, "", tool_calls=(ToolCall("call_1", name, args),))
    return (USER, call, Message(Role.TOOL, result, tool_call_id="call_1"))


def build(where: str, text: str, request_id: str) -> Task:
    """A task carrying ``text`` at ``where`` (the places of tests/guards/test_identity.py).

    Every place is a field the router's Task carries (it holds a whole BlindRequest): tool calls
    and tool results travel as earlier turns of the conversation, with the tool they call
    defined, so every provider's strict validation accepts the request.
    """
    msgs: tuple[Message, ...] = (USER,)
    tools: tuple[ToolDef, ...] = ()
    system = ""
    if where == "system_prompt":
        system = text
    elif where == "message":
        msgs = (Message(Role.USER, text),)
    elif where == "multi_turn":
        msgs = (USER, Message(Role.ASSISTANT, "Sure, here it is."), Message(Role.USER, text))
    elif where == "tool_result":
        msgs, tools = _tool_turns(result=text), (SEND_LETTER,)
    elif where == "tool_call_name":
        msgs, tools = _tool_turns(name=text), (SEND_LETTER,)
    elif where in ("tool_call_args", "tool_call_args_raw"):
        args = text if where.endswith("_raw") else json.dumps({"body": text, "urgent": True})
        msgs, tools = _tool_turns(args=args), (SEND_LETTER,)
    elif where == "attachment_name":
        att = Attachment(text, "text/plain", b"hello")
        msgs = (Message(Role.USER, "See the attached notes.", attachments=(att,)),)
    elif where == "attachment_text":
        att = Attachment("notes.txt", "text/plain; charset=utf-8", text.encode())
        msgs = (Message(Role.USER, "See the attached notes.", attachments=(att,)),)
    elif where == "tool_name":
        tools = (ToolDef(text, "Looks facts up.", LETTER_SCHEMA),)
    elif where == "tool_description":
        tools = (ToolDef("lookup", text, LETTER_SCHEMA),)
    elif where == "tool_schema":
        schema = {"type": "object", "properties": {"who": {"type": "string", "description": text}}}
        tools = (ToolDef("lookup", "Looks facts up.", json.dumps(schema)),)
    elif where == "tool_schema_key":
        schema = {"type": "object", "properties": {text: {"type": "integer"}}}
        tools = (ToolDef("lookup", "Looks facts up.", json.dumps(schema)),)
    elif where == "tool_schema_raw":
        tools = (ToolDef("lookup", "Looks facts up.", text),)
    else:
        raise AssertionError(f"unknown place {where}")
    request = BlindRequest(messages=msgs, system_prompt=system, tools=tools)
    return Task(request=request, request_id=request_id)


# -- what arrived at the simulator ----------------------------------------------------------------


def strings(value: Any) -> Iterator[str]:
    """Every string of a JSON value, keys included; strings holding JSON are opened too."""
    if isinstance(value, str):
        yield value
        if value[:1] in "{[":
            try:
                inner = json.loads(value)
            except ValueError:
                return
            yield from strings(inner)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)


def letters(text: str) -> str:
    """The naive view: lower-case, only a-z kept (no look-alike knowledge at all)."""
    return re.sub(r"[^a-z]", "", text.lower())


def folded_letters(text: str) -> str:
    """Slightly less naive: NFKD first (full-width, math bold, accents), then ``letters``."""
    return letters(
        "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    )


def _soul_windows() -> set[str]:
    ws = re.findall(r"[a-z]+", SOUL.read_text(encoding="utf-8").lower().replace("'", ""))
    return {"".join(ws[i : i + 8]) for i in range(len(ws) - 7)}


SOUL_WINDOWS = _soul_windows()


def naive_hits(text: str) -> list[str]:
    hits = []
    for view in {letters(text), folded_letters(text)}:
        hits += [n for n in NAIVE_NAMES if n in view]
        hits += ["soul passage" for w in SOUL_WINDOWS if w in view]
    return hits


def problems(guard: IdentityGuard, records: list[dict[str, Any]]) -> list[str]:
    """Everything identifying in the recorded requests (their bodies, paths and queries)."""
    out = []
    for r in records:
        parts = [*strings(r["body"]), r["path"], *strings(r["query"])]
        for s in parts:
            if guard.scan(s):
                out.append(f"{r['target']}: normaliser finds identity in {s!r}")
            if naive_hits(s):
                out.append(f"{r['target']}: naive check finds {naive_hits(s)} in {s!r}")
        # Pieces spread over several strings (a name spelled one letter per enum value, a
        # passage split over two arguments) only show when the strings are read together.
        joined = " ".join(parts)
        if guard.scan(joined) or naive_hits(joined):
            out.append(f"{r['target']}: identity across strings of the body")
    return out


# -- the stacks -----------------------------------------------------------------------------------


def _with_on_detect(mode: str):  # type: ignore[no-untyped-def]
    """``tests.stack.sim_config`` with the identity section's on_detect replaced."""
    original = tests.stack.sim_config

    def sim_config(sim_url, tmp, tweak=None, base=tests.stack.BACKENDS_YAML):  # type: ignore[no-untyped-def]
        config, path = original(sim_url, tmp, tweak, base)
        assert config.identity is not None
        config = dataclasses.replace(
            config, identity=dataclasses.replace(config.identity, on_detect=mode)
        )
        Path(path).write_text(dump_config(config))
        return load_config(path), path

    return sim_config


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redact(
    tmp_path_factory: pytest.TempPathFactory, stack_links: Links
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("redact"), links=stack_links) as s:
        assert s.config.identity is not None and s.config.identity.on_detect == "redact"
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reject(
    tmp_path_factory: pytest.TempPathFactory, stack_links: Links
) -> AsyncIterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tests.stack, "sim_config", _with_on_detect("reject"))
        async with running_stack(tmp_path_factory.mktemp("reject"), links=stack_links) as s:
            assert s.config.identity is not None and s.config.identity.on_detect == "reject"
            yield s


_GUARDS: dict[str, IdentityGuard] = {}


def guard_of(stack: Stack) -> IdentityGuard:
    """The project's own normaliser and matcher, loaded from the stack's configuration."""
    if stack.config_path not in _GUARDS:
        assert stack.config.identity is not None
        _GUARDS[stack.config_path] = IdentityGuard.load(
            stack.config.identity, str(Path(stack.config_path).parent)
        )
    return _GUARDS[stack.config_path]


async def ledger_rows(stack: Stack, request_id: str) -> list[dict[str, Any]]:
    """Read through the running caller's ledger: it sees the completions it has queued."""
    ledger = stack.caller.core.ledger  # type: ignore[attr-defined]
    rows = await ledger.rows(limit=100_000)
    return [dict(r) for r in rows if r["request_id"] == request_id]


# -- the tests ------------------------------------------------------------------------------------


async def test_the_corpus_covers_every_field_and_obfuscation() -> None:
    assert len(LEAKS) >= 50
    places = {c["where"] for c in LEAKS}
    assert {
        "system_prompt",
        "message",
        "multi_turn",
        "tool_name",
        "tool_description",
        "tool_schema",
        "tool_schema_key",
        "attachment_name",
        "attachment_text",
        "tool_call_name",
        "tool_call_args",
        "tool_result",
    } <= places
    obfuscations = {c["obfuscation"] for c in LEAKS}
    for needed in ("zero_width", "bidi", "cyrillic", "greek", "nfkc_fullwidth", "dotted", "spaced"):
        assert needed in obfuscations
    assert {o for o in obfuscations if o.startswith("soul_")} >= {
        "soul_whitespace",
        "soul_punctuation",
        "soul_case",
    }


async def test_the_naive_check_sees_the_plain_leaks() -> None:
    """The independent check is not vacuous: it finds the unobfuscated leaks by itself."""
    for case in LEAKS:
        if case["obfuscation"] in ("plain", "case", "soul_plain", "soul_case", "soul_long_run"):
            assert naive_hits(case["text"]), case


@pytest.mark.parametrize("case", LEAKS, ids=case_id)
async def test_redact_mode_nothing_identifying_arrives_unary_and_streamed(
    redact: Stack, case: dict[str, str]
) -> None:
    redact.sim.state.requests.clear()
    rid = f"leak-redact-{LEAKS.index(case)}"
    result = await redact.dispatch(build(case["where"], case["text"], rid))
    records = redact.sim.requests()
    assert records, "the scrubbed request must still be sent"
    assert all(r["status"] == 200 for r in records), [(r["target"], r["status"]) for r in records]
    assert [outcome_from_pb(a.outcome) for a in result.attempts][-1] is Outcome.SUCCESS
    assert problems(guard_of(redact), records) == []
    # The ledger says that it happened, never what it was.
    rows = await ledger_rows(redact, rid)
    assert rows and all(row["identity_redactions"] > 0 for row in rows)
    for row in rows:
        for value in row.values():
            if isinstance(value, str):
                assert not naive_hits(value) and case["text"] not in value

    # The streaming path scrubs the same way.
    redact.sim.state.requests.clear()
    task = build(case["where"], case["text"], rid + "-stream")
    events = [
        e
        async for e in redact.router_stub.DispatchStream(
            router_pb2.DispatchRequest(task=task_to_pb(task)), timeout=20
        )
    ]
    assert events[-1].WhichOneof("event") == "done"
    records = redact.sim.requests()
    assert records and all(r["status"] == 200 for r in records)
    assert problems(guard_of(redact), records) == []


@pytest.mark.parametrize("case", LEAKS, ids=case_id)
async def test_reject_mode_sends_nothing(reject: Stack, case: dict[str, str]) -> None:
    reject.sim.state.requests.clear()
    rid = f"leak-reject-{LEAKS.index(case)}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await reject.dispatch(build(case["where"], case["text"], rid))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(err.value)
    assert status is not None
    failure = router_pb2.DispatchFailure()
    assert status.details[0].Unpack(failure)
    assert outcome_from_pb(failure.outcome) is Outcome.IDENTITY_LEAK
    assert [outcome_from_pb(a.outcome) for a in failure.attempts] == [Outcome.IDENTITY_LEAK]
    # The error names the field, never the material.
    for text in (failure.message, err.value.details() or "", failure.attempts[0].error_message):
        assert not naive_hits(text) and case["text"] not in text
    assert reject.sim.requests() == []
    rows = await ledger_rows(reject, rid)
    assert [r["outcome"] for r in rows] == ["identity_leak"]
    assert rows[0]["input_tokens"] == rows[0]["output_tokens"] == 0


async def test_reject_mode_still_serves_clean_tasks(reject: Stack) -> None:
    reject.sim.state.requests.clear()
    result = await reject.dispatch(
        Task(request=BlindRequest(messages=(Message(Role.USER, "Who was Tim Berners-Lee?"),)))
    )
    assert result.text and len(reject.sim.requests()) == 1


async def test_reject_mode_on_the_streaming_path(reject: Stack) -> None:
    reject.sim.state.requests.clear()
    task = build("message", "Please write a short poem about Grand Timmy.", "leak-reject-stream")
    call = reject.router_stub.DispatchStream(
        router_pb2.DispatchRequest(task=task_to_pb(task)), timeout=20
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reject.sim.requests() == []
