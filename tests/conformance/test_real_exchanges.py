"""Conformance with real provider traffic: every recorded exchange in
``tests/data/conformance/real_exchanges.jsonl`` (real HTTP exchanges with OpenAI, Anthropic,
Gemini, Groq, Mistral and OpenRouter, recorded by other projects) is served byte for byte, with
its recorded status and content type, from a local HTTP server (not the simulator), and run
through the real ``Call`` / ``CallStream`` path of the caller service and through the
``uniwizard`` command line (router, caller, ledger).

What must come out is what the provider said: the answer text, every tool call (name and
arguments), the provider's own finish reason and its usage; a recorded error becomes its outcome
class with the provider's message (never a crash, never an empty success). How usage is read per
provider is stated in :func:`tests.conformance.recorded.recorded_usage`; the cost is checked
against the price of that usage worked out by hand (:func:`tests.conformance.recorded.hand_priced`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from caller_svc.refusal import RefusalDetector
from tests.conformance import recorded
from tests.conformance.recorded import Exchange, ReplayStack
from uniwizard import cli, telemetry
from uniwizard.convert import call_result_from_pb, request_to_pb, tool_call_from_pb
from uniwizard.net import aio_channel
from uniwizard.types import CallResult, Outcome, ToolCall, Usage
from uniwizard.v1 import caller_pb2, caller_pb2_grpc

EXCHANGES = recorded.load_exchanges()
IDS = [ex.id for ex in EXCHANGES]

# The outcome class of each recorded error, reviewed by hand (the design brief's table: a
# wrong model name is the request's fault, a bad key is auth, 429 is a rate limit, a Groq
# tool-validation error sent inside a 200 stream is the request's fault too).
ERROR_CLASSES = {
    "openai-error-404-model-not-found": Outcome.BAD_REQUEST,
    "anthropic-error-401-invalid-key": Outcome.AUTH,
    "openai_compatible-groq-stream-midstream-error": Outcome.BAD_REQUEST,
    "openai_compatible-openrouter-error-429": Outcome.RATE_LIMITED,
}
# For a recorded error not reviewed above (another set of exchanges): the class its status
# (or, inside a stream, its error type) stands for in the outcome table.
_STATUS_CLASSES = {
    400: Outcome.BAD_REQUEST,
    401: Outcome.AUTH,
    403: Outcome.AUTH,
    404: Outcome.BAD_REQUEST,
    408: Outcome.TIMEOUT,
    413: Outcome.CONTEXT_WINDOW,
    429: Outcome.RATE_LIMITED,
    500: Outcome.SERVER_ERROR,
    502: Outcome.SERVER_ERROR,
    503: Outcome.OVERLOADED,
    504: Outcome.SERVER_ERROR,
    529: Outcome.OVERLOADED,
}
_TYPE_CLASSES = {
    "invalid_request_error": Outcome.BAD_REQUEST,
    "authentication_error": Outcome.AUTH,
    "permission_error": Outcome.AUTH,
    "rate_limit_error": Outcome.RATE_LIMITED,
    "overloaded_error": Outcome.OVERLOADED,
    "api_error": Outcome.SERVER_ERROR,
    "RESOURCE_EXHAUSTED": Outcome.RATE_LIMITED,
    "UNAVAILABLE": Outcome.OVERLOADED,
    "INTERNAL": Outcome.SERVER_ERROR,
}
# A 4xx may be more precisely a context-window or content-policy failure, by its wording.
_REFINED = {Outcome.BAD_REQUEST: {Outcome.CONTEXT_WINDOW, Outcome.CONTENT_POLICY}}


def error_classes(ex: Exchange) -> set[Outcome]:
    """The outcome classes a recorded error may become."""
    if ex.id in ERROR_CLASSES:
        return {ERROR_CLASSES[ex.id]}
    if ex.status >= 400:
        base = _STATUS_CLASSES.get(ex.status) or (
            Outcome.BAD_REQUEST if ex.status < 500 else Outcome.SERVER_ERROR
        )
    else:  # an error inside a 200 body or stream
        base = Outcome.SERVER_ERROR
        for obj in recorded.json_objects(ex):
            err = obj.get("error")
            if isinstance(err, dict):
                kind = str(err.get("type") or err.get("status") or "")
                code = err.get("status_code") or err.get("code")
                if kind in _TYPE_CLASSES:
                    base = _TYPE_CLASSES[kind]
                elif isinstance(code, int) and code in _STATUS_CLASSES:
                    base = _STATUS_CLASSES[code]
    return {base, *_REFINED.get(base, set())}


def expected_outcome(ex: Exchange) -> set[Outcome]:
    if ex.is_error:
        return error_classes(ex)
    if recorded.provider_refusal(ex):
        return {Outcome.REFUSAL}
    text = ex.expect["text"] or ""
    if not text.strip() and not ex.expect["tool_calls"]:
        return {Outcome.EMPTY}
    if not ex.expect["tool_calls"] and RefusalDetector().detect(text).is_refusal:
        # An answer that refuses in words (none in the shared set: see the test above); it is
        # judged by the detector, whose own precision and recall are measured elsewhere.
        return {Outcome.REFUSAL}
    return {Outcome.SUCCESS}


def norm(text: str) -> str:
    return " ".join(text.split())


def said_tool_calls(calls: list[ToolCall] | tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": json.loads(c.arguments_json)} for c in calls]


def expected_usage(ex: Exchange) -> Usage | None:
    """What the provider reported, and that it is what the recording's ``expect`` says (which
    counts Gemini's candidates without thoughts and Anthropic's input without the cache)."""
    usage = recorded.recorded_usage(ex)
    if ex.expect["input_tokens"] is None and ex.expect["output_tokens"] is None:
        return usage
    assert usage is not None, f"{ex.id}: expect has usage, the reader found none"
    if ex.provider == "anthropic":
        assert ex.expect["input_tokens"] == (
            usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        )
    else:
        assert ex.expect["input_tokens"] == usage.input_tokens - (
            0 if ex.provider != "gemini" else _tool_use_prompt(ex)
        )
    out = ex.expect["output_tokens"] or 0
    reasoning_apart = ex.provider == "gemini"  # candidatesTokenCount excludes thoughts
    assert out == usage.output_tokens - (usage.reasoning_tokens if reasoning_apart else 0)
    return usage


def _tool_use_prompt(ex: Exchange) -> int:
    metas = [o["usageMetadata"] for o in recorded.json_objects(ex) if "usageMetadata" in o]
    return int(metas[-1].get("toolUsePromptTokenCount", 0)) if metas else 0


SPANS = InMemorySpanExporter()


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayStack]:
    telemetry.use_exporter(SPANS)  # before the services start: their tracers are made then
    try:
        with ReplayStack(EXCHANGES) as stack:
            yield stack
    finally:
        telemetry.use_exporter(None)


# -- the recordings themselves ---------------------------------------------------------------


def test_the_copy_is_byte_identical_to_the_shared_original() -> None:
    if not recorded.SHARED.exists():
        pytest.skip(f"no shared original at {recorded.SHARED} (a clean clone)")
    assert recorded.COPY.read_bytes() == recorded.SHARED.read_bytes()


def test_the_copy_has_its_licenses_and_readme() -> None:
    names = {p.name for p in (recorded.DATA / "licenses").iterdir()}
    assert {"pydantic-ai-LICENSE.txt", "dd-trace-py-LICENSE.txt"} <= names
    assert "real_exchanges.jsonl" in (recorded.DATA / "README.md").read_text()


def test_every_provider_and_kind_is_covered() -> None:
    if recorded.EXCHANGES != recorded.COPY:
        pytest.skip("another set of exchanges")
    assert len(EXCHANGES) == 20
    for provider in ("openai", "anthropic", "gemini", "openai_compatible"):
        mine = [ex for ex in EXCHANGES if ex.provider == provider]
        assert len(mine) == 5
        assert any(ex.stream for ex in mine) and any(not ex.stream for ex in mine)
        assert any(ex.expect["tool_calls"] for ex in mine)
    assert sum(ex.is_error for ex in EXCHANGES) == 4


def test_no_recorded_answer_reads_as_a_refusal() -> None:
    """Precision of the refusal detector on real answers: none of them is a refusal (the one
    refusal in the set is Gemini's own safety block, which carries no text)."""
    answers = [ex.expect["text"] for ex in EXCHANGES if not ex.is_error and ex.expect["text"]]
    assert answers
    detector = RefusalDetector()
    assert [a[:40] for a in answers if detector.detect(a).is_refusal] == []


# -- through the caller: Call / CallStream ---------------------------------------------------


async def _call(
    replay: ReplayStack, ex: Exchange, request_id: str, use: str = "call"
) -> tuple[list[Any], CallResult]:
    """One Call or CallStream on the exchange's backend: the stream's events and the result."""
    assert replay.caller is not None
    request = caller_pb2.CallRequest(
        backend=f"{ex.key}-{use}",
        request=request_to_pb(recorded.blind_request(ex)),
        request_id=request_id,
        category="conformance",
        attempt=1,
    )
    async with aio_channel(replay.caller.target, "tests") as channel:
        stub = caller_pb2_grpc.CallerStub(channel)
        if not ex.stream:
            return [], call_result_from_pb(await stub.Call(request, timeout=30))
        events: list[Any] = []
        result = None
        async for ev in stub.CallStream(request, timeout=30):
            which = ev.WhichOneof("event")
            if which == "text_delta":
                events.append(ev.text_delta)
            elif which == "tool_call":
                events.append(tool_call_from_pb(ev.tool_call))
            else:
                assert result is None, "exactly one result, last"
                result = call_result_from_pb(ev.result)
        assert result is not None
        return events, result


def ledger_row(replay: ReplayStack, request_id: str) -> dict[str, Any]:
    with closing(sqlite3.connect(replay.tmp / "ledger.db")) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM attempts WHERE request_id = ?", (request_id,)).fetchall()
    assert len(rows) == 1
    return dict(rows[0])


@pytest.mark.parametrize("ex", EXCHANGES, ids=IDS)
def test_call_gives_what_the_provider_said(replay: ReplayStack, ex: Exchange) -> None:
    request_id = uuid.uuid4().hex
    events, result = replay.run(_call(replay, ex, request_id))

    # our request went where the real client's went (the server 404s anything else)
    (sent,) = replay.requests_for(f"{ex.key}-call")
    assert (sent.method, sent.path) == (ex.method, ex.path)
    if ex.provider == "gemini" and ex.stream:
        assert sent.query.get("alt") == "sse"

    assert result.outcome in expected_outcome(ex), (result.outcome, result.error_message)
    if ex.is_error:
        assert norm(recorded.provider_error_message(ex))[:240] in norm(result.error_message)
        assert result.text == "" and result.tool_calls == ()
    elif recorded.provider_refusal(ex):  # the provider's own refusal or block, named
        assert recorded.provider_refusal(ex) in result.error_message
        if ex.expect["finish_reason"] is not None:
            assert result.provider_finish_reason == ex.expect["finish_reason"]
        else:  # a blocked prompt has no finish reason; its block reason stands for it
            assert result.provider_finish_reason in ("", recorded.provider_refusal(ex))
    else:
        assert result.text == (ex.expect["text"] or "")
        assert said_tool_calls(result.tool_calls) == ex.expect["tool_calls"]
        assert result.provider_finish_reason == (ex.expect["finish_reason"] or "")

    if ex.stream and not ex.is_error and result.outcome is Outcome.SUCCESS:
        # the stream delivered the same text and the same tool calls, as they came
        assert "".join(e for e in events if isinstance(e, str)) == (ex.expect["text"] or "")
        streamed = [e for e in events if isinstance(e, ToolCall)]
        assert said_tool_calls(streamed) == ex.expect["tool_calls"]

    # An error bills nothing, or (a stream cut after some text) the estimate of that text.
    usage = None if ex.is_error else expected_usage(ex)
    if usage is not None:
        assert result.usage == usage
        assert result.cost_source == "provider"
        assert result.cost_usd == pytest.approx(recorded.hand_priced(usage), abs=1e-8)
    elif ex.is_error and result.usage.estimated:  # text had come before the error
        assert result.cost_source == "estimated" and result.usage.output_tokens > 0
    elif ex.is_error:
        assert (result.usage.input_tokens, result.usage.output_tokens) == (0, 0)
        assert result.cost_usd == 0.0
    else:
        assert result.usage.estimated and result.cost_source == "estimated"

    row = ledger_row(replay, request_id)
    assert row["outcome"] == result.outcome.value
    assert row["sent"] == 1
    assert row["cost_usd"] == pytest.approx(result.cost_usd, abs=1e-12)
    assert (
        row["input_tokens"],
        row["output_tokens"],
        row["cached_input_tokens"],
        row["cache_write_tokens"],
        row["reasoning_tokens"],
    ) == (
        result.usage.input_tokens,
        result.usage.output_tokens,
        result.usage.cached_input_tokens,
        result.usage.cache_write_tokens,
        result.usage.reasoning_tokens,
    )


# -- through the command line: router, caller, ledger ----------------------------------------


def run_cli(
    replay: ReplayStack,
    ex: Exchange,
    use: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    *,
    json_out: bool,
) -> tuple[int, str, str]:
    args = ["think", "--backend", f"{ex.key}-{use}", "--deadline", "30"]
    if json_out:
        args.append("--json")
    if ex.stream:
        args.append("--stream")
    tools = recorded.recorded_tools(ex)
    if tools:
        path = tmp_path / "tools.json"
        path.write_text(json.dumps(tools))
        args += ["--tools", str(path)]
    capsys.readouterr()
    code = cli.main([*args, recorded.last_user_text(ex)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def router_env(replay: ReplayStack, monkeypatch: pytest.MonkeyPatch) -> None:
    assert replay.router is not None
    monkeypatch.setenv("UNIWIZARD_ROUTER_ADDR", replay.router.target)


@pytest.mark.parametrize("ex", EXCHANGES, ids=IDS)
def test_the_command_line_gives_what_the_provider_said(
    replay: ReplayStack,
    router_env: None,
    ex: Exchange,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    code, out, err = run_cli(replay, ex, "cli", capsys, tmp_path, json_out=True)
    data = json.loads(out)
    outcome = expected_outcome(ex)
    usage = expected_usage(ex)
    if outcome == {Outcome.SUCCESS}:
        assert code == 0, err
        assert data["text"] == (ex.expect["text"] or "")
        calls = [
            {"name": c["name"], "arguments": json.loads(c["arguments"])} for c in data["tool_calls"]
        ]
        assert calls == ex.expect["tool_calls"]
        assert data["provider_finish_reason"] == (ex.expect["finish_reason"] or "")
        (attempt,) = data["attempts"]
        assert attempt["outcome"] == "success"
        if usage is not None:
            assert (attempt["input_tokens"], attempt["output_tokens"]) == (
                usage.input_tokens,
                usage.output_tokens,
            )
            assert (
                attempt["cached_input_tokens"],
                attempt["cache_write_tokens"],
                attempt["reasoning_tokens"],
            ) == (usage.cached_input_tokens, usage.cache_write_tokens, usage.reasoning_tokens)
            assert attempt["cost_usd"] == pytest.approx(recorded.hand_priced(usage), abs=1e-8)
            assert data["cost_usd"] == pytest.approx(recorded.hand_priced(usage), abs=1e-8)
        return
    # a failure: exit 1 and the typed error, the provider's words in every attempt
    assert code == cli.EXIT_FAILED, out
    assert Outcome(data["error"]["class"]) in outcome
    assert data["attempts"], data
    for attempt in data["attempts"]:
        assert Outcome(attempt["outcome"]) in outcome
        if ex.is_error:
            said = norm(recorded.provider_error_message(ex))[:240]
            assert said in norm(attempt["error"])
        elif recorded.provider_refusal(ex):  # the provider's own refusal or block, named
            assert recorded.provider_refusal(ex) in attempt["error"]


@pytest.mark.parametrize(
    "ex",
    [ex for ex in EXCHANGES if expected_outcome(ex) == {Outcome.SUCCESS}],
    ids=lambda ex: ex.id,
)
def test_the_command_line_prints_the_answer_and_each_tool_call(
    replay: ReplayStack,
    router_env: None,
    ex: Exchange,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    """Text output (streamed or not): the answer as the provider said it, then each tool call
    on its own line, ``[tool call NAME ARGUMENTS]``."""
    code, out, err = run_cli(replay, ex, "text", capsys, tmp_path, json_out=False)
    assert code == 0, err
    text = ex.expect["text"] or ""
    assert out.startswith(text)
    lines = [line for line in out[len(text) :].split("\n") if line]
    assert lines == [
        cli.tool_call_line(c["name"], json.dumps(c["arguments"])) for c in ex.expect["tool_calls"]
    ]
    assert re.search(r"^— x\d\d-text \(", err, re.M), err


def test_the_provider_span_carries_the_breakdown_under_genai_names(replay: ReplayStack) -> None:
    """Gemini 2.5 Flash's thoughts: output_tokens includes them (the GenAI conventions' "SHOULD
    be included") and gen_ai.usage.reasoning.output_tokens names them; no cache attributes
    when nothing was cached."""
    (ex,) = [e for e in EXCHANGES if e.id == "gemini-text-25-flash"] or [None]
    if ex is None:
        pytest.skip("another set of exchanges")
    SPANS.clear()
    _, result = replay.run(_call(replay, ex, uuid.uuid4().hex, use="span"))
    (span,) = [s for s in SPANS.get_finished_spans() if s.name == "chat gemini-2.5-flash"]
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == 9
    assert attrs["gen_ai.usage.output_tokens"] == 9 + 34
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 34
    assert "gen_ai.usage.cache_read.input_tokens" not in attrs
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(result.cost_usd)
