"""Fuzz the small parsers of the caller: Retry-After / durations and semantic refusal detection.

Contract: ``parse_retry_after`` and ``parse_duration`` never raise and return a finite number of
seconds >= 0; ``RefusalDetector.detect`` never raises, names its rule, and answers quickly on
any text (its regexes must not backtrack exponentially); its cleaning, which skips each pattern
when the text lacks a character the pattern needs, cleans exactly as running every pattern does.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import unicodedata
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from caller_svc import refusal
from caller_svc.refusal import RefusalDetector, RefusalVerdict
from uniwizard.providers.outcomes import classify_error, parse_duration, parse_retry_after, truncate
from uniwizard.types import Outcome

DATES = st.sampled_from(
    [
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Mon, 01 Jan 0001 00:00:00 GMT",
        "Mon, 01 Jan 1 00:00:00 +9999",
        "0 Jan 2000 00:00:00",
        "Mon, 32 Jan 2000 00:00:00 GMT",
        "Sat, 29 Feb 2001 00:00:00 GMT",
        "Tue, 1 Jan 2030",
    ]
)

# The profile registered in conftest.py ("ci" by default, HYPOTHESIS_PROFILE=deep to hunt),
# applied to these tests only.
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
VALUES = st.one_of(
    st.text(max_size=40),
    DATES,
    st.floats().map(str),
    st.sampled_from(["1e999", "-1e999", "inf", "nan", "9" * 400, "12", " 7 ", "0x10", "1_000"]),
)


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "Retry-After", "retry-after-ms", "Retry-After-Ms", "x"]),
        VALUES,
        max_size=3,
    ),
    now=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)
@example(headers={"retry-after": "1e999"}, now=None)
@example(headers={"retry-after-ms": "inf"}, now=None)
@example(headers={"retry-after": "9" * 400}, now=None)
def test_parse_retry_after_is_finite_and_not_negative(
    headers: dict[str, str], now: float | None
) -> None:
    seconds = parse_retry_after(headers, now)
    assert isinstance(seconds, float)
    assert math.isfinite(seconds) and seconds >= 0


@FUZZ
@given(
    text=st.one_of(st.text(max_size=40), VALUES, st.from_regex(r"(\d{1,400}(\.\d*)?(ms|h|m|s))+"))
)
@example(text="9" * 400 + "s")
@example(text="inf")
def test_parse_duration_is_finite_and_not_negative(text: str) -> None:
    seconds = parse_duration(text)
    assert math.isfinite(seconds) and seconds >= 0


@FUZZ
@given(
    status=st.integers(min_value=-(2**31), max_value=2**31),
    message=st.text(max_size=200),
    codes=st.lists(st.text(max_size=20), max_size=3).map(tuple),
)
def test_classify_error_and_truncate_never_raise(
    status: int, message: str, codes: tuple[str, ...]
) -> None:
    assert isinstance(classify_error(status, message, codes), Outcome)
    short = truncate(message, 50)
    assert len(short) <= 50 and "\n" not in short


DETECTOR = RefusalDetector()
_FRAGMENTS = st.sampled_from(
    [
        "I'm sorry",
        "sorry",
        "but",
        "however,",
        "I can't",
        "help",
        "with that",
        "I get",
        "I understand",
        "as an AI",
        "developed by",
        "unfortunately",
        "no",
        "ok",
        "hmm",
        "I must decline",
        "that's not something I can",
        "here's",
        "```",
        '"',
        "`",
        ">",
        ",",
        ".",
        "!",
        "?",
        "\n",
        " ",
        "**",
        "#",
        "—",
        "’",
        "I won't.",
        "do that",
        "enough",
        "please",
        "a lawyer",
        "the error is",
    ]
)
ANSWERS = st.one_of(
    st.text(max_size=300),
    st.lists(_FRAGMENTS, max_size=80).map(" ".join),
    st.lists(_FRAGMENTS, max_size=80).map("".join),
)


@FUZZ
@given(text=ANSWERS)
@example(text="i get " * 40 + "zzz")
@example(text="i understand " * 40 + "zzz")
@example(text="sorry " + "but " * 60 + "zzz")
@example(text="as an ai developed by x " * 30 + "zzz")
@example(text="I'm sorry, but I can't help with that.")
def test_refusal_detection_never_raises_and_is_fast(text: str) -> None:
    started = time.perf_counter()
    verdict = DETECTOR.detect(text)
    elapsed = time.perf_counter() - started
    assert isinstance(verdict, RefusalVerdict) and verdict.rule
    assert not (verdict.is_refusal and not text.strip())
    # Linear regexes answer in well under a millisecond per character; exponential
    # backtracking took minutes on 90 characters. 2 s leaves room for a slow CI machine.
    assert elapsed < 2.0, f"{elapsed:.2f} s for {len(text)} characters"


def _clean_every_pattern(text: str) -> str:
    """``refusal._clean`` as written before its patterns were guarded by the characters each
    one needs: every pattern runs on every answer."""
    t = unicodedata.normalize("NFKC", text).translate(refusal._TYPOGRAPHY)
    t = refusal._CODE_FENCE.sub(" ", t)
    t = refusal._INLINE_CODE.sub(" code ", t)
    t = refusal._BLOCK_QUOTE.sub(" ", t)
    if len(refusal._SPEAKER_LINE.findall(t)) >= 2:
        t = refusal._SPEAKER_LINE.sub(" ", t)
    t = refusal._DASH_LINE.sub(" ", t)
    t = refusal._QUOTED.sub(" quote ", t)
    t = refusal._SINGLE_QUOTED.sub(" quote ", t)
    t = _REPORTED_UNGUARDED.sub(" quote ", t)
    t = refusal._MARKDOWN.sub("", t)
    t = refusal._EMPHASIS.sub("", t)
    return t.lower()


# _REPORTED without its leading (?=[srawty]) lookahead.
_REPORTED_UNGUARDED = re.compile(
    refusal._REPORTED.pattern.removeprefix("(?=[srawty])"), refusal._REPORTED.flags
)
_MARKUP = st.sampled_from(
    ["```", "~~~", "`", ">", ":", "—", "–", '"', "\u201c", "\u201d", "\u00ab", "\u00bb", "'",
     "\u2019", "*", "_", "#", "- ", "1. ", "\n", "ALICE: ", "Bob (aside): ", "she said: ",
     "He REPLIED: ", "\u017fays: ", "I said: ", "i wrote: "]
)  # fmt: skip
MARKED_UP = st.lists(st.one_of(_FRAGMENTS, _MARKUP), max_size=60).map(" ".join)


@FUZZ
@given(text=st.one_of(ANSWERS, MARKED_UP, st.text(max_size=200)))
def test_guarding_each_pattern_by_its_characters_changes_no_cleaned_text(text: str) -> None:
    assert refusal._REPORTED.pattern.startswith("(?=[srawty])")
    assert refusal._clean(text) == _clean_every_pattern(text)


def test_the_guards_change_nothing_on_the_labelled_answers() -> None:
    data = Path(__file__).resolve().parents[1] / "data" / "refusals.jsonl"
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line]
    assert len(rows) > 250
    for row in rows:
        assert refusal._clean(row["text"]) == _clean_every_pattern(row["text"]), row["note"]
