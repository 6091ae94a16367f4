"""Fuzz the identity scrubber (caller_svc.identity) with random blind requests.

Requests mix benign words (including the near-misses of ``benign.jsonl``: Tim, timing,
Timothy ...), the identity names under random obfuscations (spacing, punctuation, leetspeak,
zero-width and bidi characters, look-alike letters, full-width, case), soul passages, random
unicode, and JSON documents in tool arguments and schemas.

Contract: ``apply`` returns a ``GuardResult`` or raises ``IdentityLeak``; in redact mode every
field of the result re-scans clean and a JSON field stays valid JSON; a request with no identity
material comes back identical (the very same object); reject mode raises exactly when redact
mode finds something.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from caller_svc.identity import GuardResult, IdentityGuard, IdentityLeak, _charset
from uniwizard.types import Attachment, BlindRequest, Message, Role, ToolCall, ToolDef

# The profile registered in conftest.py ("ci" by default, HYPOTHESIS_PROFILE=deep to hunt),
# applied to these tests only.
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("Timmy", "Grand Timmy", "Uniwizard")
SOUL = (ROOT / "configs" / "soul.md").read_text(encoding="utf-8")
SOUL_WORDS = SOUL.split()
BENIGN = [
    json.loads(line)["text"]
    for line in (ROOT / "tests" / "data" / "identity" / "benign.jsonl").read_text().splitlines()
    if line.strip()
]
BENIGN_WORDS = sorted({w for t in BENIGN for w in t.split()} | {"Tim", "my", "timing", "tummy"})

# A declared charset=unicode_escape decodes "\\q" with a DeprecationWarning: the data's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")

REDACT = IdentityGuard(NAMES, [SOUL])
REJECT = IdentityGuard(NAMES, [SOUL], on_detect="reject")

_HOMOGLYPHS = {"T": "ТΤ", "i": "іι", "m": "м", "y": "уγ", "a": "аα", "o": "оο", "e": "е"}
_INVISIBLE = ["\u200b", "\u200c", "\u2060", "\ufeff", "\u00ad", "\u202e"]
_LEET = {"i": "1", "a": "4", "e": "3", "o": "0", "s": "5", "t": "7"}


@st.composite
def obfuscated_name(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    out = []
    for ch in name:
        op = draw(st.sampled_from(["keep", "keep", "case", "homoglyph", "leet", "wide", "sep"]))
        if op == "case":
            ch = ch.swapcase()
        elif op == "homoglyph" and ch in _HOMOGLYPHS:
            ch = draw(st.sampled_from(_HOMOGLYPHS[ch]))
        elif op == "leet" and ch.lower() in _LEET:
            ch = _LEET[ch.lower()]
        elif op == "wide" and "!" <= ch <= "~":
            ch = chr(ord(ch) + 0xFEE0)
        elif op == "sep":
            ch += draw(st.sampled_from([".", " ", "-", "_", *_INVISIBLE]))
        out.append(ch)
    return "".join(out) + draw(st.sampled_from(["", "", "'s", "s"]))


@st.composite
def soul_passage(draw: st.DrawFn) -> str:
    n = draw(st.integers(8, 14))
    start = draw(st.integers(0, len(SOUL_WORDS) - n))
    words = SOUL_WORDS[start : start + n]
    sep = draw(st.sampled_from([" ", "\n", "  ", " \u200b"]))
    text = sep.join(words)
    return text.upper() if draw(st.booleans()) else text


BENIGN_TEXT = st.lists(st.sampled_from(BENIGN_WORDS), max_size=12).map(" ".join)
PIECES = st.one_of(
    st.sampled_from(BENIGN_WORDS),
    st.sampled_from(BENIGN_WORDS),
    obfuscated_name(),
    soul_passage(),
    st.text(max_size=12),
)
TEXT = st.lists(PIECES, max_size=6).map(lambda xs: " ".join(xs))


def json_doc(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), strings),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)
        ),
        max_leaves=6,
    )


def json_text(strings: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        json_doc(strings).map(lambda d: json.dumps(d)),
        json_doc(strings).map(lambda d: json.dumps(d, ensure_ascii=True)),  # \\u escapes
        st.sampled_from(["", "{", "[1,", "{}", "null", "[" * 3000 + "]" * 3000]),
        strings,
    )


MEDIA = st.sampled_from(
    [
        "text/plain",
        "text/markdown; charset=utf-8",
        "text/plain; charset=utf-16",
        "text/plain; charset=latin-1",
        "text/csv; charset=ascii",
        "text/plain; charset=bogus",
        "text/plain; charset=undefined",
        "text/plain; charset=idna",
        "application/json",
        "application/ld+json",
        "text/plain; charset=unicode_escape",
        "image/png",
        "audio/wav",
    ]
)


def _encode(text: str, media_type: str) -> bytes:
    try:
        return text.encode(_charset(media_type), errors="replace")
    except (UnicodeError, LookupError):
        return text.encode("utf-8", "surrogatepass")


def attachments(text: st.SearchStrategy[str]) -> st.SearchStrategy[Attachment]:
    return st.builds(
        lambda name, media, body, raw, use_raw: Attachment(
            name, media, raw if use_raw else _encode(body, media)
        ),
        text,
        MEDIA,
        text,
        st.binary(max_size=30),
        st.booleans(),
    )


def requests(text: st.SearchStrategy[str]) -> st.SearchStrategy[BlindRequest]:
    calls = st.builds(ToolCall, id=text, name=text, arguments_json=json_text(text))
    messages = st.builds(
        Message,
        role=st.sampled_from(list(Role)),
        text=text,
        attachments=st.lists(attachments(text), max_size=1).map(tuple),
        tool_calls=st.lists(calls, max_size=1).map(tuple),
        tool_call_id=text,
    )
    tools = st.builds(ToolDef, name=text, description=text, parameters_json=json_text(text))
    return st.builds(
        BlindRequest,
        messages=st.lists(messages, min_size=1, max_size=2).map(tuple),
        system_prompt=text,
        tools=st.lists(tools, max_size=1).map(tuple),
    )


def _fields(request: BlindRequest) -> list[tuple[str, str, bool]]:
    """(path, text, is_json_field) of everything a backend sees as text."""
    out = [("system_prompt", request.system_prompt, False)]
    for i, m in enumerate(request.messages):
        out += [(f"messages[{i}].text", m.text, False), (f"m{i}.id", m.tool_call_id, False)]
        for j, a in enumerate(m.attachments):
            out.append((f"m{i}.a{j}.name", a.name, False))
            if re.match(r"^(text/|application/(json|[\w.+-]*\+json))", a.media_type):
                out.append(
                    (
                        f"m{i}.a{j}.data",
                        a.data.decode(_charset(a.media_type), "replace")
                        if _charset(a.media_type) not in ("idna", "unicode_escape")
                        else a.data.decode("utf-8", "replace"),
                        False,
                    )
                )
        for j, c in enumerate(m.tool_calls):
            out += [(f"m{i}.c{j}.id", c.id, False), (f"m{i}.c{j}.name", c.name, False)]
            out.append((f"m{i}.c{j}.args", c.arguments_json, True))
    for i, t in enumerate(request.tools):
        out += [(f"t{i}.name", t.name, False), (f"t{i}.desc", t.description, False)]
        out.append((f"t{i}.params", t.parameters_json, True))
    return out


def _strings(doc: Any) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in (k, *_strings(v))]
    return []


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@FUZZ
@given(request=requests(TEXT))
@example(
    request=BlindRequest(
        (Message(Role.USER, "x", (Attachment("a", "text/plain; charset=utf-16", b"A"),)),)
    )
)
@example(
    request=BlindRequest(
        (Message(Role.USER, "x", (Attachment("a", "text/plain; charset=undefined", b"x"),)),)
    )
)
@example(
    request=BlindRequest(
        (Message(Role.USER, "x", (Attachment("a", "text/plain; charset=idna", b"\xff"),)),)
    )
)
@example(
    request=BlindRequest(
        (Message(Role.ASSISTANT, "", (), (ToolCall("c", "f", "[" * 600 + '"x"' + "]" * 600),)),)
    )
)
@example(
    request=BlindRequest(
        (Message(Role.ASSISTANT, "", (), (ToolCall("c", "f", "[" * 900 + '"Timmy"' + "]" * 900),)),)
    )
)
def test_redaction_always_ends_clean(request: BlindRequest) -> None:
    try:
        result = REDACT.apply(request)
    except IdentityLeak as exc:
        assert exc.fields  # names where, never what
        return
    assert isinstance(result, GuardResult)
    if result.matches == 0:
        assert result.request is request and result.fields == ()
        return
    assert result.fields
    before = {path: is_json and _is_json(text) for path, text, is_json in _fields(request)}
    for path, text, _ in _fields(result.request):
        assert REDACT.scan(text) == [], path
        if before[path]:
            assert _is_json(text), path  # a JSON field stays JSON
            for s in _strings(json.loads(text)):
                assert REDACT.scan(s) == [], path


@FUZZ
@given(request=requests(BENIGN_TEXT))
@example(request=BlindRequest((Message(Role.USER, "Tim my timing Timothy tummy"),)))
def test_a_request_without_identity_comes_back_identical(request: BlindRequest) -> None:
    result = REDACT.apply(request)
    assert result.request is request
    assert result.matches == 0 and result.fields == ()
    assert REJECT.apply(request).request is request


@FUZZ
@given(request=requests(TEXT))
def test_reject_mode_raises_exactly_when_redact_mode_finds_something(
    request: BlindRequest,
) -> None:
    try:
        redacted = REDACT.apply(request)
    except IdentityLeak:
        with pytest.raises(IdentityLeak):
            REJECT.apply(request)
        return
    if redacted.matches == 0:
        assert REJECT.apply(request).request is request
    else:
        with pytest.raises(IdentityLeak) as info:
            REJECT.apply(request)
        assert set(info.value.fields) == set(redacted.fields)


@FUZZ
@given(text=TEXT)
def test_redact_of_a_string_rescans_clean(text: str) -> None:
    try:
        new, count = REDACT.redact(text)
    except IdentityLeak:
        return
    assert REDACT.scan(new) == []
    assert (count == 0) == (new is text)
