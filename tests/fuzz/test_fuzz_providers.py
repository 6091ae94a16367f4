"""Fuzz the provider adapters with random and damaged bodies and streams.

Seeds are the golden files (``tests/data/golden/<provider>/``): response and error bodies,
mutated in their JSON tree (a subtree replaced by a random value, a key dropped, deep nesting)
and in their text (truncated, characters flipped or deleted), and SSE transcripts with damaged
events, cut anywhere and split into random chunks.

Contract: ``parse_response`` raises only ``MalformedResponse``; ``parse_error`` never raises and
returns a ``Failure``; a stream's ``feed`` raises only ``MalformedResponse`` /
``ProviderStreamError``, ``finish`` only ``StreamIncomplete`` / ``MalformedResponse``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from uniwizard.providers import (
    MalformedResponse,
    ParsedResponse,
    ProviderStreamError,
    StreamIncomplete,
    get_adapter,
)
from uniwizard.providers.base import FINISH_REASONS, MAX_ERROR_MESSAGE
from uniwizard.providers.sse import SSEDecoder
from uniwizard.types import Failure, Outcome, ToolCall, Usage

# The profile registered in conftest.py ("ci" by default, HYPOTHESIS_PROFILE=deep to hunt),
# applied to these tests only.
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
PROVIDERS = ("openai", "openai_compatible", "anthropic", "gemini")


def _body(path: Path) -> bytes:
    data = json.loads(path.read_text(encoding="utf-8"))
    if "body_text" in data:
        return str(data["body_text"]).encode()
    return json.dumps(data["body"]).encode()


def _golden(prefix: str, suffix: str = ".json") -> list[tuple[str, bytes]]:
    out = []
    for provider in PROVIDERS:
        for path in sorted((GOLDEN / provider).glob(f"{prefix}_*{suffix}")):
            raw = path.read_bytes() if suffix == ".sse" else _body(path)
            out.append((provider, raw))
    assert out, f"no golden {prefix}_*{suffix}"
    return out


RESPONSES = _golden("response")
ERRORS = _golden("error")
STREAMS = _golden("stream", ".sse")

# Keys the adapters look at, so random values land where they matter.
_KEYS = st.sampled_from(
    "type text content choices message delta candidates parts error index tool_calls function "
    "name arguments id usage model finish_reason stop_reason finishReason promptFeedback "
    "blockReason functionCall args input partial_json content_block code status details "
    "message_start message_delta modelVersion usageMetadata refusal thought retryDelay @type "
    "prompt_tokens completion_tokens input_tokens output_tokens reason detail".split()
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["", "stop", "tool_use", "STOP", "SAFETY", "error", "text", "[DONE]"]),
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(_KEYS, st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=12,
)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_nodes(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_nodes(v, (*path, i)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any, delete: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(value[head], rest, new, delete)
        return copy
    copy = list(value)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replace(value[head], rest, new, delete)
    return copy


def _nest(text: str, depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + text + "]" * depth
    return '{"a":' * depth + text + "}" * depth


@st.composite
def damaged_json(draw: st.DrawFn, seeds: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A golden body, mutated in its JSON tree and/or its text."""
    provider, raw = draw(st.sampled_from(seeds))
    try:
        tree: Any = json.loads(raw)
    except ValueError:
        tree = None
    if tree is not None:
        for _ in range(draw(st.integers(0, 3))):
            paths = _nodes(tree)
            path = draw(st.sampled_from(paths))
            if path and draw(st.booleans()):
                tree = _replace(tree, path, None, delete=True)
            else:
                tree = _replace(tree, path, draw(JSON))
        raw = json.dumps(tree, allow_nan=True).encode()
    text = raw.decode("utf-8", "surrogateescape")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "delete", "nest", "none"]))
        if op == "truncate" and text:
            text = text[: draw(st.integers(0, len(text)))]
        elif op in ("flip", "delete") and text:
            i = draw(st.integers(0, len(text) - 1))
            ch = draw(st.characters()) if op == "flip" else ""
            text = text[:i] + ch + text[i + 1 :]
        elif op == "nest":
            depth = draw(st.sampled_from([1, 10, 100, 1000, 5000, 100_000]))
            text = _nest(text, depth, draw(st.sampled_from(["list", "dict"])))
    return provider, text.encode("utf-8", "surrogateescape")


BODIES = st.one_of(
    damaged_json(RESPONSES),
    st.tuples(st.sampled_from(PROVIDERS), st.binary(max_size=100)),
    st.tuples(st.sampled_from(PROVIDERS), JSON.map(lambda v: json.dumps(v).encode())),
)


def _check_parsed(parsed: ParsedResponse) -> None:
    assert isinstance(parsed, ParsedResponse)
    assert isinstance(parsed.text, str)
    assert parsed.finish_reason in FINISH_REASONS
    assert isinstance(parsed.raw_finish_reason, str)
    assert isinstance(parsed.response_model, str)
    assert isinstance(parsed.provider_refusal, bool)
    assert parsed.usage is None or isinstance(parsed.usage, Usage)
    if parsed.usage is not None:
        for n in (parsed.usage.input_tokens, parsed.usage.output_tokens):
            assert isinstance(n, int) and not isinstance(n, bool)
    for call in parsed.tool_calls:
        assert isinstance(call, ToolCall)
        assert call.name and isinstance(call.name, str)
        assert isinstance(call.id, str) and call.id
        assert isinstance(call.arguments_json, str) and call.arguments_json


def _check_error(error: Failure) -> None:
    assert isinstance(error, Failure)
    assert isinstance(error.outcome, Outcome)
    assert error.outcome is not Outcome.SUCCESS or 200 <= error.http_status < 300
    assert isinstance(error.message, str)
    assert len(error.message) <= MAX_ERROR_MESSAGE
    assert "\n" not in error.message
    assert isinstance(error.http_status, int)
    assert math.isfinite(error.retry_after_s) and error.retry_after_s >= 0
    assert isinstance(error.provider_code, str)


@FUZZ
@given(case=BODIES)
@example(case=("openai", b"[" * 100_000))
@example(case=("anthropic", b'{"a":' * 100_000))
@example(case=("gemini", b"[" * 100_000))
def test_parse_response_raises_only_malformed(case: tuple[str, bytes]) -> None:
    """A 2xx body is an answer, malformed, or (an error object) the provider's failure."""
    provider, body = case
    try:
        parsed = get_adapter(provider).parse_response(body)
    except MalformedResponse as exc:
        assert str(exc)  # says what is wrong
        return
    except ProviderStreamError as exc:
        assert exc.failure.outcome is not Outcome.SUCCESS and exc.failure.message
        return
    _check_parsed(parsed)


_HEADER_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "20",
            "0.5",
            "-3",
            "1e999",
            "inf",
            "-inf",
            "nan",
            "NaN",
            "",
            " 7 ",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "Mon, 32 Jan 2000 00:00:00 GMT",
            "9" * 400,
        ]
    ),
)
HEADERS = st.dictionaries(
    st.sampled_from(["retry-after", "Retry-After", "retry-after-ms", "RETRY-AFTER-MS", "x-other"]),
    _HEADER_VALUES,
    max_size=3,
)
STATUSES = st.one_of(
    st.sampled_from([0, 200, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504, 529]),
    st.integers(min_value=-10, max_value=10**6),
)
ERROR_BODIES = st.one_of(
    damaged_json(ERRORS),
    st.tuples(st.sampled_from(PROVIDERS), st.binary(max_size=100)),
    st.tuples(st.sampled_from(PROVIDERS), JSON.map(lambda v: json.dumps(v).encode())),
    st.tuples(
        st.sampled_from(PROVIDERS),
        st.text(max_size=400).map(lambda t: f"<html><title>{t}</title>{t}</html>".encode()),
    ),
)


@FUZZ
@given(case=ERROR_BODIES, status=STATUSES, headers=HEADERS)
@example(case=("openai", b"[" * 100_000), status=500, headers={})
@example(case=("gemini", b'{"a":' * 100_000), status=0, headers={})
@example(case=("anthropic", b"{}"), status=429, headers={"retry-after": "1e999"})
@example(case=("openai", b"{}"), status=429, headers={"retry-after-ms": "inf"})
@example(
    case=(
        "gemini",
        b'{"error": {"details": [{"@type": "google.rpc.RetryInfo", '
        b'"retryDelay": "' + b"9" * 400 + b's"}]}}',
    ),
    status=429,
    headers={},
)
@example(
    case=(
        "openai",
        b'{"error": {"message": "try again in ' + b"9" * 400 + b's", '
        b'"code": "rate_limit_exceeded"}}',
    ),
    status=429,
    headers={},
)
def test_parse_error_never_raises(
    case: tuple[str, bytes], status: int, headers: dict[str, str]
) -> None:
    provider, body = case
    error = get_adapter(provider).parse_error(status, headers, body)
    _check_error(error)


# --- streams -------------------------------------------------------------------------------


def _events(raw: bytes) -> list[bytes]:
    return [e for e in raw.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]


@st.composite
def damaged_stream(draw: st.DrawFn) -> tuple[str, bytes]:
    provider, raw = draw(st.sampled_from(STREAMS))
    if draw(st.booleans()):  # sometimes another provider's stream
        provider = draw(st.sampled_from(PROVIDERS))
    events = _events(raw)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "data", "name", "json", "junk"]))
        if not events:
            break
        i = draw(st.integers(0, len(events) - 1))
        if op == "drop":
            del events[i]
        elif op == "dup":
            events.insert(i, events[i])
        elif op == "swap":
            j = draw(st.integers(0, len(events) - 1))
            events[i], events[j] = events[j], events[i]
        elif op == "data":
            events[i] = b"data: " + draw(JSON).__repr__().encode()[:200]
        elif op == "name":
            name = draw(
                st.sampled_from([b"error", b"ping", b"message_stop", b"message_delta", b"x"])
            )
            events[i] = b"event: " + name + b"\n" + events[i]
        elif op == "json":
            lines = events[i].split(b"\n")
            for k, line in enumerate(lines):
                if line.startswith(b"data:"):
                    try:
                        tree = json.loads(line[5:])
                    except ValueError:
                        continue
                    path = draw(st.sampled_from(_nodes(tree)))
                    tree = _replace(tree, path, draw(JSON))
                    lines[k] = b"data: " + json.dumps(tree).encode()
            events[i] = b"\n".join(lines)
        else:
            events.insert(i, draw(st.binary(max_size=40)))
    body = b"\n\n".join(events) + b"\n\n"
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    return provider, body


def _run(provider: str, raw: bytes, cuts: list[int]) -> dict[str, Any]:
    """Decode and feed ``raw`` cut at ``cuts``; describe what happened."""
    decoder = SSEDecoder()
    state = get_adapter(provider).new_stream()
    deltas: list[Any] = []
    pieces = []
    last = 0
    for cut in sorted({min(c, len(raw)) for c in cuts}):
        pieces.append(raw[last:cut])
        last = cut
    pieces.append(raw[last:])
    try:
        for piece in pieces:
            for event in decoder.feed(piece):
                deltas.extend(state.feed(event))
        for event in decoder.close():
            deltas.extend(state.feed(event))
    except MalformedResponse as exc:
        return {"deltas": deltas, "raised": ("malformed", str(exc))}
    except ProviderStreamError as exc:
        _check_error(exc.failure)
        assert exc.failure.outcome is not Outcome.SUCCESS
        return {"deltas": deltas, "raised": ("provider", exc.failure)}
    try:
        parsed = state.finish()
    except StreamIncomplete as exc:
        assert not state.finish_seen
        return {"deltas": deltas, "raised": ("incomplete", str(exc))}
    except MalformedResponse as exc:
        return {"deltas": deltas, "raised": ("malformed", str(exc))}
    assert state.finish_seen
    _check_parsed(parsed)
    # What was forwarded is what the answer holds.
    assert "".join(d.text for d in deltas) == parsed.text or parsed.provider_refusal
    forwarded = tuple(d.tool_call for d in deltas if d.tool_call is not None)
    assert forwarded == parsed.tool_calls
    return {"deltas": deltas, "parsed": parsed}


@FUZZ
@given(case=damaged_stream(), cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_stream_raises_only_typed_errors_and_ignores_chunking(
    case: tuple[str, bytes], cuts: list[int]
) -> None:
    provider, raw = case
    whole = _run(provider, raw, [])
    assert _run(provider, raw, cuts) == whole


@FUZZ
@given(
    provider=st.sampled_from(PROVIDERS),
    events=st.lists(
        st.tuples(st.sampled_from(["", "error", "message_start", "ping", "x"]), JSON), max_size=8
    ),
)
@example(
    provider="anthropic",
    events=[
        (
            "",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "t", "name": "n"},
            },
        ),
        (
            "",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "[" * 100_000},
            },
        ),
        ("", {"type": "content_block_stop", "index": 0}),
    ],
)
def test_stream_of_random_events(provider: str, events: list[tuple[str, Any]]) -> None:
    raw = b"".join(
        (f"event: {name}\n" if name else "").encode()
        + b"data: "
        + json.dumps(value).encode()
        + b"\n\n"
        for name, value in events
    )
    _run(provider, raw, [])
