"""Identity scrubbing (caller_svc.identity): leaks in every field, benign text untouched,
failing closed at load."""

from __future__ import annotations

import json
import os
import re
import statistics
import time
import unicodedata
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caller_svc.identity import (
    GuardResult,
    IdentityConfigError,
    IdentityGuard,
    IdentityLeak,
)
from uniwizard.config_types import IdentityConfig
from uniwizard.types import Attachment, BlindRequest, Message, Role, ToolCall, ToolDef

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "identity"
NAMES = ("Timmy", "Grand Timmy", "Uniwizard")
SOUL = ROOT / "configs" / "soul.md"


def _jsonl(name: str) -> list[dict[str, str]]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


LEAKS = _jsonl("leaks.jsonl")
BENIGN = _jsonl("benign.jsonl")


def _guard(on_detect: str = "redact") -> IdentityGuard:
    cfg = IdentityConfig(names=NAMES, soul_files=("soul.md",), on_detect=on_detect)
    return IdentityGuard.load(cfg, str(ROOT / "configs"))


@pytest.fixture(scope="module")
def guard() -> IdentityGuard:
    return _guard()


@pytest.fixture(scope="module")
def rejecting() -> IdentityGuard:
    return _guard("reject")


# -- building requests with the payload in one place ---------------------------------------

_USER = Message(Role.USER, "Please help with the task.")


def _call(name: str = "send_letter", args: str = "{}") -> Message:
    return Message(Role.ASSISTANT, "", tool_calls=(ToolCall("call_1", name, args),))


def build(where: str, text: str) -> tuple[BlindRequest, str]:
    """A request carrying ``text`` at ``where``, and the field path it should be reported at."""
    if where == "system_prompt":
        return BlindRequest((_USER,), system_prompt=text), "system_prompt"
    if where == "message":
        return BlindRequest((Message(Role.USER, text),)), "messages[0].text"
    if where == "multi_turn":
        msgs = (_USER, Message(Role.ASSISTANT, "Sure, here it is."), Message(Role.USER, text))
        return BlindRequest(msgs), "messages[2].text"
    if where == "tool_result":
        msgs = (_USER, _call(), Message(Role.TOOL, text, tool_call_id="call_1"))
        return BlindRequest(msgs), "messages[2].text"
    if where == "tool_call_name":
        return BlindRequest((_USER, _call(name=text))), "messages[1].tool_calls[0].name"
    if where in ("tool_call_args", "tool_call_args_raw"):
        args = text if where.endswith("_raw") else json.dumps({"body": text, "urgent": True})
        return BlindRequest((_USER, _call(args=args))), "messages[1].tool_calls[0].arguments_json"
    if where == "attachment_name":
        att = Attachment(text, "text/plain", b"hello")
        msg = Message(Role.USER, "see attached", attachments=(att,))
        return BlindRequest((msg,)), "messages[0].attachments[0].name"
    if where == "attachment_text":
        att = Attachment("notes.txt", "text/plain; charset=utf-8", text.encode())
        msg = Message(Role.USER, "see attached", attachments=(att,))
        return BlindRequest((msg,)), "messages[0].attachments[0].data"
    if where == "tool_name":
        return BlindRequest((_USER,), tools=(ToolDef(text),)), "tools[0].name"
    if where == "tool_description":
        return BlindRequest((_USER,), tools=(ToolDef("lookup", text),)), "tools[0].description"
    if where in ("tool_schema", "tool_schema_key", "tool_schema_raw"):
        if where == "tool_schema":
            schema = {
                "type": "object",
                "properties": {"who": {"type": "string", "description": text}},
            }
            params = json.dumps(schema)
        elif where == "tool_schema_key":
            params = json.dumps({"type": "object", "properties": {text: {"type": "integer"}}})
        else:
            params = text
        return BlindRequest(
            (_USER,), tools=(ToolDef("lookup", "", params),)
        ), "tools[0].parameters_json"
    raise AssertionError(f"unknown place {where}")


def all_strings(req: BlindRequest) -> dict[str, str]:
    """Every text that leaves for a provider, by field path."""
    out = {"system_prompt": req.system_prompt}
    for i, m in enumerate(req.messages):
        out[f"messages[{i}].text"] = m.text
        out[f"messages[{i}].tool_call_id"] = m.tool_call_id
        for j, a in enumerate(m.attachments):
            out[f"messages[{i}].attachments[{j}].name"] = a.name
            out[f"messages[{i}].attachments[{j}].data"] = a.data.decode("utf-8", "replace")
        for j, c in enumerate(m.tool_calls):
            out[f"messages[{i}].tool_calls[{j}].id"] = c.id
            out[f"messages[{i}].tool_calls[{j}].name"] = c.name
            out[f"messages[{i}].tool_calls[{j}].arguments_json"] = c.arguments_json
            out[f"messages[{i}].tool_calls[{j}].arguments_json(decoded)"] = _decoded(
                c.arguments_json
            )
    for i, t in enumerate(req.tools):
        out[f"tools[{i}].name"] = t.name
        out[f"tools[{i}].description"] = t.description
        out[f"tools[{i}].parameters_json"] = t.parameters_json
        out[f"tools[{i}].parameters_json(decoded)"] = _decoded(t.parameters_json)
    return out


def _decoded(doc: str) -> str:
    def walk(v: object) -> list[str]:
        if isinstance(v, str):
            return [v]
        if isinstance(v, list):
            return [s for x in v for s in walk(x)]
        if isinstance(v, dict):
            return [s for k, x in v.items() for s in (k, *walk(x))]
        return []

    return " ".join(walk(json.loads(doc)))


# -- an independent, naive check -------------------------------------------------------------

_NAIVE_FOLD = {
    "\u0422": "t",
    "\u0443": "y",
    "\u0430": "a",
    "\u0406": "i",
    "\u041c": "m",
    "\u0423": "y",
    "\u043c": "m",
    "\u043e": "o",
    "\u03a4": "t",
    "\u0399": "i",
    "\u039c": "m",
    "\u03a5": "y",
    "\u03b9": "i",
    "\u1d1b": "t",
    "\u026a": "i",
    "\u1d0d": "m",
    "\u028f": "y",
    "\u13a2": "t",
    "\u13a5": "i",
    "\u13b7": "m",
    "\u13a9": "y",
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "7": "t",
}


def naive_letters(text: str) -> str:
    """Only the letters a-z, after a simple decomposition and a hand-written fold."""
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        ch = _NAIVE_FOLD.get(ch, ch).lower()
        if "a" <= ch <= "z":
            out.append(ch)
    return "".join(out)


def _soul_windows() -> set[str]:
    ws = re.findall(r"[a-z]+", SOUL.read_text(encoding="utf-8").lower().replace("'", ""))
    return {"".join(ws[i : i + 8]) for i in range(len(ws) - 7)}


SOUL_WINDOWS = _soul_windows()


def naive_leak(text: str) -> bool:
    letters = naive_letters(text)
    if "timmy" in letters or "uniwizard" in letters:
        return True
    return any(w in letters for w in SOUL_WINDOWS)


# -- leaks ------------------------------------------------------------------------------------


def test_leak_corpus_shape() -> None:
    assert len(LEAKS) >= 60
    places = {r["where"] for r in LEAKS}
    assert {
        "system_prompt",
        "message",
        "tool_name",
        "tool_description",
        "tool_schema",
        "attachment_name",
        "tool_call_args",
        "multi_turn",
    } <= places
    for r in LEAKS:
        assert naive_leak(r["text"]) or r["obfuscation"].startswith("json_"), r


@pytest.mark.parametrize("case", LEAKS, ids=lambda r: f"{r['where']}-{r['obfuscation']}")
def test_leak_is_redacted_everywhere(guard: IdentityGuard, case: dict[str, str]) -> None:
    request, path = build(case["where"], case["text"])
    result = guard.apply(request)
    assert isinstance(result, GuardResult)
    assert result.matches >= 1
    assert path in result.fields
    for field, value in all_strings(result.request).items():
        assert guard.scan(value) == [], field
        assert not naive_leak(value), field
    for t in result.request.tools:
        json.loads(t.parameters_json)  # still valid JSON
    for m in result.request.messages:
        for c in m.tool_calls:
            json.loads(c.arguments_json)
    assert guard.apply(result.request).request is result.request  # a fixed point


@pytest.mark.parametrize("case", LEAKS, ids=lambda r: f"{r['where']}-{r['obfuscation']}")
def test_leak_is_rejected(rejecting: IdentityGuard, case: dict[str, str]) -> None:
    request, path = build(case["where"], case["text"])
    with pytest.raises(IdentityLeak) as info:
        rejecting.apply(request)
    assert path in info.value.fields
    assert case["text"] not in str(info.value)


def test_fields_and_counts_name_no_content(guard: IdentityGuard) -> None:
    req = BlindRequest(
        (
            Message(Role.USER, "Hi Timmy"),
            Message(Role.ASSISTANT, "ok"),
            Message(Role.USER, "Uniwizard!"),
        ),
        system_prompt="You serve Grand Timmy.",
        tools=(ToolDef("lookup", "Ask T.i.m.m.y"),),
    )
    result = guard.apply(req)
    assert result.fields == (
        "system_prompt",
        "messages[0].text",
        "messages[2].text",
        "tools[0].description",
    )
    assert result.matches == 4
    assert result.request.system_prompt == "You serve [redacted]."
    assert result.request.messages[1] is req.messages[1]
    for value in (repr(result.fields), repr(guard.scan("Hi Timmy"))):
        assert "Timmy" not in value


def test_tool_call_ids_stay_paired(guard: IdentityGuard) -> None:
    req = BlindRequest(
        (
            _USER,
            Message(Role.ASSISTANT, "", tool_calls=(ToolCall("call_timmy_1", "f", "{}"),)),
            Message(Role.TOOL, "done", tool_call_id="call_timmy_1"),
        )
    )
    out = guard.apply(req).request
    assert out.messages[1].tool_calls[0].id == out.messages[2].tool_call_id
    assert "timmy" not in out.messages[2].tool_call_id


def test_provider_state_is_kept_when_clean_and_dropped_whole_when_not(
    guard: IdentityGuard, rejecting: IdentityGuard
) -> None:
    """A tool call's provider state is signed by the provider: it cannot be redacted and stay
    valid, so identity material in it (also behind a JSON escape) drops it whole."""
    clean = '{"provider":"gemini","thought_signature":"CiwBVKhc7oNb"}'
    # "\u0054" is a T only once the JSON is decoded
    thinking = '{"provider":"anthropic","thinking":[{"thinking":"Ask \\u0054immy"}]}'

    def req(state: str) -> BlindRequest:
        call = ToolCall("c1", "f", "{}", provider_state=state)
        return BlindRequest((_USER, Message(Role.ASSISTANT, "", tool_calls=(call,))))

    assert guard.apply(req(clean)).request is not None
    assert guard.apply(req(clean)).request.messages[1].tool_calls[0].provider_state == clean
    dirty = guard.apply(req(thinking))
    assert dirty.request.messages[1].tool_calls[0].provider_state == ""
    assert dirty.fields == ("messages[1].tool_calls[0].provider_state",)
    with pytest.raises(IdentityLeak) as leak:
        rejecting.apply(req(thinking))
    assert leak.value.fields == ("messages[1].tool_calls[0].provider_state",)


def test_binary_attachments_are_left_alone(guard: IdentityGuard) -> None:
    data = b"\x89PNG Timmy \xff"
    req = BlindRequest(
        (Message(Role.USER, "x", attachments=(Attachment("a.png", "image/png", data),)),)
    )
    assert guard.apply(req).request is req


def test_non_utf8_text_attachment_round_trips(guard: IdentityGuard) -> None:
    data = b"caf\xe9 with Timmy \xff\xfe end"
    req = BlindRequest(
        (Message(Role.USER, "x", attachments=(Attachment("a.txt", "text/plain", data),)),)
    )
    out = guard.apply(req).request.messages[0].attachments[0].data
    assert out == b"caf\xe9 with [redacted] \xff\xfe end"


def test_passage_redaction_covers_the_whole_run(guard: IdentityGuard) -> None:
    soul = SOUL.read_text(encoding="utf-8")
    start = soul.index("I keep a few vows")
    passage = soul[start : soul.index("ledger.", start) + len("ledger.")]
    text, n = guard.redact("Before. " + passage.upper() + " After.")
    assert text == "Before. [redacted]. After."
    assert n == 1


# -- benign -----------------------------------------------------------------------------------


def test_benign_corpus_shape() -> None:
    assert len(BENIGN) >= 100


@pytest.mark.parametrize("case", BENIGN, ids=lambda r: r["note"])
def test_benign_passes_byte_identical(
    guard: IdentityGuard, rejecting: IdentityGuard, case: dict[str, str]
) -> None:
    text = case["text"]
    assert guard.scan(text) == []
    assert guard.redact(text) == (text, 0)
    for where in (
        "system_prompt",
        "message",
        "tool_description",
        "attachment_text",
        "tool_call_args",
    ):
        request, _ = build(where, text)
        result = guard.apply(request)
        assert result.request is request
        assert (result.matches, result.fields) == (0, ())
        assert rejecting.apply(request).request is request


def test_seven_word_runs_of_the_soul_pass(guard: IdentityGuard) -> None:
    ws = re.findall(r"[A-Za-z0-9']+", SOUL.read_text(encoding="utf-8"))
    for i in range(0, len(ws) - 7, 3):
        seven = " ".join(ws[i : i + 7])
        if "Timmy" in seven or "Uniwizard" in seven:
            continue
        assert guard.scan(f"zebra {seven} quokka") == [], seven
        eight = " ".join(ws[i : i + 8])
        if "Timmy" not in eight:
            assert [m.kind for m in guard.scan(f"zebra {eight} quokka")] == ["soul"], eight


def test_no_names_no_souls_is_a_no_op() -> None:
    g = IdentityGuard()
    req, _ = build("message", "Timmy")
    assert g.apply(req).request is req


# -- failing closed ---------------------------------------------------------------------------


def _load(tmp_path: Path, soul: str) -> IdentityGuard:
    return IdentityGuard.load(IdentityConfig(names=NAMES, soul_files=(soul,)), str(tmp_path))


def test_missing_soul_file(tmp_path: Path) -> None:
    with pytest.raises(IdentityConfigError, match=re.escape(str(tmp_path / "nope.md"))):
        _load(tmp_path, "nope.md")


def test_directory_instead_of_soul_file(tmp_path: Path) -> None:
    (tmp_path / "soul.md").mkdir()
    with pytest.raises(IdentityConfigError, match=r"soul\.md.*directory"):
        _load(tmp_path, "soul.md")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores chmod")
def test_unreadable_soul_file(tmp_path: Path) -> None:
    soul = tmp_path / "soul.md"
    soul.write_text(SOUL.read_text(encoding="utf-8"), encoding="utf-8")
    soul.chmod(0)
    try:
        with pytest.raises(IdentityConfigError, match=r"soul\.md.*permission"):
            _load(tmp_path, "soul.md")
    finally:
        soul.chmod(0o600)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty"),
        (b"  \n\t\n", "empty"),
        (b"# .\n--\n", "empty"),
        (b"too short to fingerprint", "only 4 words"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
    ],
)
def test_bad_soul_content(tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / "soul.md").write_bytes(content)
    with pytest.raises(IdentityConfigError) as info:
        _load(tmp_path, "soul.md")
    assert str(tmp_path / "soul.md") in str(info.value)
    assert why in str(info.value)


def test_absolute_soul_path(tmp_path: Path) -> None:
    g = IdentityGuard.load(IdentityConfig(names=NAMES, soul_files=(str(SOUL),)), str(tmp_path))
    assert g.scan("they receive a task and return tokens, and I weave")


def test_bad_settings() -> None:
    with pytest.raises(IdentityConfigError, match="on_detect"):
        IdentityGuard(NAMES, on_detect="warn")
    with pytest.raises(IdentityConfigError, match="fewer than 3"):
        IdentityGuard(("Ti",))
    with pytest.raises(IdentityConfigError, match="placeholder"):
        IdentityGuard(NAMES, placeholder="<timmy>")


def test_results_hold_no_text() -> None:
    for cls in (GuardResult,):
        assert is_dataclass(cls)
        assert [f.name for f in fields(cls)] == ["request", "matches", "fields"]


# -- performance ------------------------------------------------------------------------------


def _timed(guard: IdentityGuard, req: BlindRequest, rounds: int = 300) -> float:
    for _ in range(30):
        guard.apply(req)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        guard.apply(req)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def test_clean_request_is_fast(guard: IdentityGuard) -> None:
    prose = (
        "Please review the following function and explain why the cache misses on every "
        "call; the timing data shows the first request is slow and the rest are fine. "
    )
    text = (prose * 20)[:2000]
    ascii_req = BlindRequest((Message(Role.USER, text),))
    mixed_req = BlindRequest((Message(Role.USER, text[:1980] + " — café, naïve ‘ok’"),))
    t_ascii, t_mixed = _timed(guard, ascii_req), _timed(guard, mixed_req)
    print(
        f"\napply() on a clean 2000-char request: ASCII {t_ascii * 1e6:.0f} µs, "
        f"non-ASCII {t_mixed * 1e6:.0f} µs (median)"
    )
    assert t_ascii < 1e-3
    assert t_mixed < 1e-3


# -- fuzzing: redaction always reaches a clean fixed point ------------------------------------

_PIECES = st.sampled_from(
    [
        "Timmy",
        "T.i.m.m.y",
        "Ｔｉｍｍｙ",
        "Ti\u200bmmy",
        "Grand",
        " ",
        ".",
        "-",
        "tim",
        "my",
        "they receive a task and return tokens, and I weave",
        "\u0422",
        "y",
        "s",
        "Uniwizard",
        "\u202e",
        "a",
        "1",
        "_",
        "wizard",
        "\u0301",
        "'",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=25).map("".join))
def test_redaction_reaches_a_clean_fixed_point(text: str) -> None:
    g = IdentityGuard(NAMES, [SOUL.read_text(encoding="utf-8")])
    try:
        out, n = g.redact(text)
    except IdentityLeak:
        return  # failing closed is allowed
    assert g.scan(out) == []
    assert (n == 0) == (out == text)
    for m in g.scan(text):
        assert 0 <= m.start < m.end <= len(text)
