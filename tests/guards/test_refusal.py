"""Semantic refusal detection (caller_svc.refusal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caller_svc.refusal import DEFAULT_RULES, RefusalDetector

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "refusals.jsonl"
with open(DATA, encoding="utf-8") as _f:
    ROWS = [json.loads(line) for line in _f if line.strip()]

# "tune": the patterns were developed against these. "heldout": written before tuning; its first
# run found 2 false positives, which led to general fixes (so it is no longer pristine).
# "heldout2": written after those fixes and never tuned against.
# "speech" (issue 15): 72 answers that quote, report or dramatise a refusal (stories, scripts,
# dialogue, reported speech, quoted error messages) and refusals of stories, dialogue and quotes,
# 36 of each, written before any tuning. Before tuning they scored precision 0.795 and recall
# 0.861: 8 answers read as refusals (single-quoted and dash dialogue, speaker-labelled scripts,
# a line after "say:", a film quote, a translation) and 5 refusals missed (pretend to be, quote,
# reproduce a text, tell you, translate). The general fixes: single quotes, reported speech
# after a speech verb and a colon, speaker-labelled and dash dialogue lines count as quoted;
# "..., said the clerk" and a following "That's HAL 9000 in 2001, said ..." attribute the words
# to someone; those five verbs. "speech2": 30 more (15 of each) written after those fixes and
# never tuned against; they scored 1.0 / 1.0 (the detector before the fixes: 1.0 / 0.60).
SPLITS = ("tune", "heldout", "heldout2", "speech", "speech2")


def _scores(rows: list[dict[str, object]]) -> tuple[float, float, list[str]]:
    det = RefusalDetector()
    tp = fp = fn = 0
    wrong = []
    for r in rows:
        got = det.detect(str(r["text"])).is_refusal
        tp += got and bool(r["refusal"])
        fp += got and not r["refusal"]
        fn += (not got) and bool(r["refusal"])
        if got != r["refusal"]:
            wrong.append(str(r["note"]))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, wrong


def test_corpus_shape() -> None:
    assert len(ROWS) >= 280
    assert sum(bool(r["refusal"]) for r in ROWS) >= 140
    assert sum(not r["refusal"] for r in ROWS) >= 140
    assert {r["split"] for r in ROWS} == set(SPLITS)
    speech = [r for r in ROWS if r["split"] in ("speech", "speech2")]
    assert sum(bool(r["refusal"]) for r in speech) == sum(not r["refusal"] for r in speech) == 51


@pytest.mark.parametrize("split", [*SPLITS, "all"])
def test_precision_and_recall(split: str) -> None:
    rows = ROWS if split == "all" else [r for r in ROWS if r["split"] == split]
    precision, recall, wrong = _scores(rows)
    print(f"\n{split}: n={len(rows)} precision={precision:.3f} recall={recall:.3f} wrong={wrong}")
    assert precision >= 0.98, wrong
    assert recall >= 0.98, wrong


MUST_CATCH = [
    "I'm sorry, but I can't help with that.",
    "I cannot assist with that request.",
    "As an AI language model, I'm not able to browse the web.",
    "I must decline.",
    "I won't be able to help with this",
    "Unfortunately, I am unable to provide the file.",
    "I can't comply with that",
    "I'm not comfortable helping with this.",
    "That's not something I can help with.",
    "I apologize, but I cannot do that.",
    "I\u2019m sorry, but I can\u2019t help with that.",
    "i'm sorry, but i can't help with that.",
    "\n\n  > \n**I cannot help with that.**",
    "- I can't assist with this request.",
    "I'm sorry, but I can't write that story.",
    "I can't pretend to be a real doctor, even in a story.",
    "I'm afraid I can't quote the full lyrics of that song.",
    "I can't tell you where she lives.",
    "I won't translate that message; it's a threat.",
    "As I told you: I can't help with 'that'.",
]

MUST_NOT_FLAG = [
    "I can't stress enough how important tests are.",
    "Sorry for the delay \u2014 here is the code: print(1)",
    "The function can't handle None; fix it like this: `if x is None: return`",
    "I cannot reproduce the bug, but here are three likely causes: caching, races, timezones.",
    "As an AI researcher once said, data beats algorithms.",
    "```\nI'm sorry, but I can't help with that.\n```",
    "\"I'm sorry, but I can't help with that.\"",
    "I won't bore you with details; the answer is 42.",
    "I can't open the file, but the traceback says the config key is missing; add it to app.py.",
    "Here is a long answer. " * 20 + "I can't help with that part, sorry.",
    "The guard said 'I can't let you in' and pointed at the sign.",
    "'I can't help you,' the old woman said, and shut the door.",
    "\u2014 I can't help you, said the clerk.\n\u2014 Then who can?",
    "GUARD: I can't help you.\nTHIEF: Not even for gold?",
    "The chatbot replied: I'm sorry, but I can't help with that. Loosen the system prompt.",
    "I can't tell you who did it yet, he thought, but I know who didn't.",
    "I can't tell you how happy I am with the result!",
    "I will not pretend this is easy: take a backup first.",
]


@pytest.mark.parametrize("text", MUST_CATCH)
def test_must_catch(text: str) -> None:
    verdict = RefusalDetector().detect(text)
    assert verdict.is_refusal, verdict


@pytest.mark.parametrize("text", MUST_NOT_FLAG)
def test_must_not_flag(text: str) -> None:
    verdict = RefusalDetector().detect(text)
    assert not verdict.is_refusal, verdict


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_empty_is_not_a_refusal(text: str) -> None:
    assert RefusalDetector().detect(text).rule == "empty"
    assert not RefusalDetector().detect(text).is_refusal


def test_rule_never_contains_answer_text() -> None:
    det = RefusalDetector(extra_phrases=("the oracle is silent",))
    allowed = {*DEFAULT_RULES, "short_answer", "extra[0]", "none", "empty", "only_code_or_quotes"}
    for r in ROWS:
        rule = det.detect(str(r["text"])).rule
        assert rule.split("+")[0] in allowed, rule


def test_extra_and_disabled_phrases() -> None:
    text = "Alas, the oracle is silent on such matters."
    assert not RefusalDetector().detect(text).is_refusal
    det = RefusalDetector(extra_phrases=("Alas, the oracle is silent",))
    assert det.detect("  ALAS — the oracle is silent on such matters.") == det.detect(text)
    assert det.detect(text).rule == "extra[0]"
    assert det.detect(text).is_refusal
    det = RefusalDetector(disabled_phrases=("decline",))
    assert not det.detect("I must decline.").is_refusal
    with pytest.raises(ValueError, match="unknown"):
        RefusalDetector(disabled_phrases=("no_such_rule",))


def test_streaming_opening_prefix() -> None:
    # caller_svc.core judges a held-back opening (~160 chars); refusals lead, so a prefix works.
    text = "I'm sorry, but I can't help with that request. " + "It would violate the policy. " * 10
    assert RefusalDetector().detect(text[:160]).is_refusal
