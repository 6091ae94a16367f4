"""Semantic refusal detection: a 200 OK whose answer declines the task.

Refusals lead. The detector looks at the *opening* of an answer — the first three sentences
that start within the first 300 characters — for a sentence-initial refusal construction:

    optional preamble            ("I'm sorry, but", "Unfortunately,", "As an AI language model,",
                                  "I understand ..., but", "Thanks for asking, but")
    + first person + negation    ("I can't", "I'm unable to", "I won't be able to",
                                  "I'm not comfortable", "I'd rather not", "I must decline")
    + a verb of helping          (help, assist, provide, comply, fulfil, create, write, share, do
                                  that ...; "help but"/"help noticing" excluded)

or "that's not something I can help with", "I must (respectfully) decline", "As an AI, I don't
have the ability ...". A short whole answer (≤ 120 characters) may have the construction anywhere
("Hmm, that one I can't help with").

A matched opening is *not* a refusal when substantive content follows: a code block, or a pivot
("but here's", "however, the likely cause is", "but based on the traceback") that leads to an
actual answer rather than to a redirect (resources, a professional, "something else").
"I can't run code, but here's how to test it" is help; "I can't help with that, but you could
talk to a lawyer" is a refusal.

Before matching, what is someone else's words is removed, because quoting or reporting a
refusal is not refusing ("the guard said 'I can't let you in'" is an answer): code blocks,
inline code, block quotes, text in double or single quotes, speech after a speech verb and a
colon ("The bot replied: ..."), dialogue lines opened by a dash or (two or more) by a speaker's
label ("ALICE: ..."). Markdown emphasis and headings are stripped, and the text is
NFKC-normalised with typographic apostrophes folded. A matched construction that its own
sentence attributes to someone ("..., said the clerk", "..., he thought"), or that the next
sentence attributes ("That's HAL 9000 in 2001, said ..."), is speech, not a refusal.

Empty answers (only whitespace) are never refusals; they are the ``empty`` outcome. ``rule``
names the construction that fired (or why nothing did), never any text of the answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

OPENING_CHARS = 300
OPENING_SENTENCES = 3
SHORT_ANSWER_CHARS = 120
SCAN_CHARS = 2000  # only this much of an answer is ever read

_I_AM = r"i(?:'m| am|m)"
_NEGATION = "|".join(
    (
        r"can't|cant|cannot|can not|won't|wont|will not|shouldn't|should not",
        r"(?:wouldn't|would not) (?:be able to|feel comfortable)",
        r"(?:'m|m| am) (?:not able|unable|not going|not allowed|not permitted|not willing"
        r"|not in a position|not comfortable|not going to be able) to",
        r"(?:'m|m| am) not comfortable",
        r"(?:don't|do not) (?:think i (?:can|should)|feel comfortable)",
        r"(?:'d|d| would) rather not",
        r"(?:must|have to|need to) (?:not|refrain from)",
        r"refuse to",
    )
)
_VERB = "|".join(
    (
        r"help(?!\s+(?:but|\w+ing)\b)(?:ing)?",
        r"assist(?:ing|ance)?|aid|support(?:ing)?|accommodat(?:e|ing)|facilitat(?:e|ing)",
        r"provid(?:e|ing)|give|giving|offer(?:ing)?|shar(?:e|ing)|supply(?:ing)?",
        r"disclos(?:e|ing)|reveal(?:ing)?|grant(?:ing)?",
        r"compl(?:y|ying)|fulfill?(?:ing)?|honou?r(?:ing)?|go along",
        r"creat(?:e|ing)|generat(?:e|ing)|writ(?:e|ing)|produc(?:e|ing)|draft(?:ing)?|mak(?:e|ing)",
        r"engag(?:e|ing)|participat(?:e|ing)|tak(?:e|ing) part|continu(?:e|ing)|role-?play(?:ing)?",
        r"answer(?:ing)?|discuss(?:ing)?|explain(?:ing)?|advis(?:e|ing)",
        r"access(?:ing)?|brows(?:e|ing)",
        r"pretend(?:ing)? to be|impersonat(?:e|ing)|translat(?:e|ing)|quot(?:e|ing)",
        r"tell(?:ing)? (?:you|him|her|them|anyone|anybody)\b",
        # reproducing a text (not a bug): "I can't reproduce the whole chapter"
        r"reproduc(?:e|ing)(?=[^.!?]{0,40}\b(?:verbatim|in full|full|whole|entire|complete"
        r"|lyrics|text|chapter|article|book|song|copyrighted)\b)",
        r"be of (?:any )?(?:help|assistance|service)",
        r"do(?:ing)? (?:that|this|so|it)\b|do\b(?=\s*(?:[.!?,;]|$))",
    )
)
# Idioms of emphasis, not refusal: "I can't recommend it enough", "can't tell you how much",
# "I can't tell you how happy I am".
_NOT_IDIOM = (
    r"(?![^.!?]*\benough\b)(?!\s+(?:you )?how (?:much|many|often|happy|glad|grateful|excited"
    r"|pleased|proud|relieved|thankful))"
)
_ADVERB = (
    r"(?:really |simply |just |unfortunately |definitely |certainly |absolutely |still |also )?"
)
_FIRST_PERSON_NEG = rf"i\s?{_ADVERB}(?:{_NEGATION})"
_GAP = r"(?:[a-z']+\s+){0,4}?"  # "I can't in good conscience help"

# Where the open-ended tail of "I understand ..." / "As an AI developed by ..." ends: the first
# clause break, "but"/"though"/"however", or a new "I ..." clause.
_TAIL_END = r"(?=[,.;]|\s+(?:but|though|however|i)\b|$)"
_PRE_ITEM = "|".join(
    (
        rf"{_I_AM} (?:so |very |really |truly |terribly |deeply )?sorry",
        r"sorry|(?:my )?apologies|i (?:do )?apologi[sz]e|unfortunately|regrettably|sadly",
        rf"{_I_AM} afraid|no|ok|okay|well|hmm+|honestly|respectfully|but|however",
        r"as an ai [a-z ]{0,40}?(?:developed|designed|trained|built|created) "
        rf"[^,]{{0,60}}?{_TAIL_END}",
        r"as an ai(?: language model| assistant| model| system| chatbot)?",
        r"as a (?:large )?language model",
        r"thanks?(?: you)? for (?:asking|the question|your question|understanding|reaching out)",
        rf"(?:while )?i (?:understand|appreciate|can see|get)[^,.;]{{0,80}}?{_TAIL_END}",
    )
)
# Each item (with the separator after it) is matched atomically: it is parsed one way only, so
# a long run of items ("sorry but but but ...", "i get i get ...") costs linear time instead of
# exponential backtracking. The repetition itself still backtracks whole items, so a rule that
# starts with a preamble word ("sorry, can't help") is still tried.
_PREAMBLE = rf"(?>(?:{_PRE_ITEM})(?![\w'])[\s,;:!.—–-]*(?:but |though |however,? )?)*"

DEFAULT_RULES: dict[str, str] = {
    # "I'm sorry, but I can't help with that", "Unfortunately, I am unable to provide ..."
    "cannot_help": rf"{_FIRST_PERSON_NEG}\s+{_GAP}(?:{_VERB})\b{_NOT_IDIOM}",
    # "I must decline", "I'm going to have to decline", "I decline to"
    "decline": r"i(?:'ll| will| must|'d| would| have to| need to|'m going to have to"
    r"| am going to have to)? (?:respectfully |politely )?(?:have to )?decline\b(?! the\b)",
    # "That's not something I can help with", "this isn't something I'm able to do"
    "not_something_i_can": r"(?:that|this|it|your request|such a request)(?:'s| is)? ?"
    r"(?:not|n't) (?:something|anything|a (?:request|task|topic|thing)) (?:that |which )?"
    rf"(?:{_I_AM}|i)\b[^.!?]{{0,40}}?\b(?:{_VERB})\b",
    # "As an AI, I don't have the ability to make phone calls"
    "no_capability": r"i (?:don't|do not) have (?:the )?"
    r"(?:ability|capability|capacity|means|access)\b",
    # "Sorry, can't help with that one" (no subject, so only after an apology)
    "sorry_cannot": rf"(?:{_I_AM} )?(?:sorry|apologies|afraid)[\s,;:!.—–-]*(?:but )?"
    rf"(?:can't|cannot|unable to|not able to)\s+{_GAP}(?:{_VERB})\b",
    # "I can't do that." / "I won't." as the whole sentence
    "bare_cannot": r"(?:i|no,? i) (?:can't|cannot|can not|won't|will not)"
    r"(?: do (?:that|this|it))?\s*[.!]*$",
}
_SHORT_RULE = rf"\bi\s?(?:{_NEGATION})\s+{_GAP}(?:{_VERB})\b{_NOT_IDIOM}"

# Substance after a refusal-looking opening: a pivot ("but", "however", "so" ...) into a clause
# that answers. A clause that only offers, redirects or apologises is not an answer.
_PIVOT = re.compile(r"\b(?:but|however|instead|that said|although|so)\b[,:]?\s+([^.!?\n]*)")
_ANSWER_LEAD = re.compile(
    r"\b(?:here(?:'s| is| are)|below|the following|based on|the (?:error|traceback|log|symptoms?"
    r"|most likely|likely|usual|common|query|script|code|command|snippet|steps))\b"
)
_REDIRECT = re.compile(
    r"\b(?:resources?|hotlines?|professionals?|lawyer|attorney|doctor|therapist|counsel+or|"
    r"emergency|authorities|organi[sz]ations?|alternatives?|something else|"
    r"another (?:topic|question)|"
    r"contact|reach out|consult|seek|please|hope|understand|sorry|apologi[sz]e|feel free|"
    r"let me know|if you(?:'d| would)? like)\b"
)
_OFFER = re.compile(r"\bi(?:'d|'ll|'m| can| could| would| will| am| may| might)\b")
MIN_ANSWER_WORDS = 4
_CODE_FENCE = re.compile(r"(?:```|~~~).*?(?:```|~~~|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_BLOCK_QUOTE = re.compile(r"^[ \t]*>.*$", re.M)
_QUOTED = re.compile(
    r"\"[^\"\n]{0,400}\"|\u201c[^\u201d\n]{0,400}\u201d|\u00ab[^\u00bb\n]{0,400}\u00bb"
)
# Single-quoted speech ('I can't help you,' she said): an opening quote that does not follow a
# letter, apostrophes inside words allowed, a closing quote not followed by a letter.
_SINGLE_QUOTED = re.compile(
    r"(?<![\w'])'(?=[^\s'])(?:[^'\n]|(?<=\w)'(?=\w)){1,400}?(?<=\S)'(?![\w'])"
)
# Speech after a speech verb and a colon, to the end of its sentence ("The bot replied: I'm
# sorry, I can't help with that.", "Your character could say: I'm not able to do that."); not
# the answer's own words ("As I said: ...").
_REPORTED = re.compile(  # (?=[srawty]): the verbs' first letters, so most positions fail fast
    r"(?=[srawty])(?<!\bi )\b"
    r"(?:say|says|said|reply|replies|replied|answer(?:s|ed)?|respond(?:s|ed)?"
    r"|write|writes|wrote|ask(?:s|ed)?|tells?|told|whisper(?:s|ed)?|shout(?:s|ed)?|yell(?:s|ed)?)"
    r"(?:[ \t]+\w+)?[ \t]*:[ \t]*[^\n]*?(?:(?<=[.!?])(?=\s)|(?=\n)|$)",
    re.IGNORECASE,
)
# Dialogue: lines opened by a speaker's label ("ALICE: ...", "Innkeeper: ...") when there are
# two or more of them, and lines opened by a dialogue dash ("— I can't help you, said the clerk.").
_SPEAKER_LINE = re.compile(
    r"^[ \t]*[A-Z][\w.'-]*(?:[ \t]+[A-Z][\w.'-]*){0,2}[ \t]*(?:\([^)\n]{0,30}\))?:[ \t]+\S.*$",
    re.M,
)
_DASH_LINE = re.compile(r"^[ \t]*[—–][ \t]*\S.*$", re.M)
# Words said by someone named right after them, in the same sentence: "..., said the clerk",
# "..., he thought".
_ATTRIBUTION = re.compile(
    r"^[^.!?]*?,\s*(?:(?:he|she|they|i|we|it|the \w+|\w+)\s+)?"
    r"(?:said|says|thought|thinks|asked|asks|replied|replies|whispered|shouted|muttered|added"
    r"|told \w+)\b"
)
# ... or in the sentence that follows, which says whose words they were: "I'm afraid I can't
# do that. That's HAL 9000 in 2001, said calmly ...".
_ATTRIBUTED_NEXT = re.compile(
    r"^(?:that's|that is|this is|those are|these are|so said|so says)\b[^.!?]*"
    r"\b(?:said|says|quote[sd]?|quoting|in (?:the )?(?:film|movie|novel|book|play|song|series))\b"
)
_MARKDOWN = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*|[-*+][ \t]+|\d+[.)][ \t]+)", re.M)
_EMPHASIS = re.compile(r"[*_]{1,3}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TYPOGRAPHY = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2014": " — ", "\u2013": " – "}
)


@dataclass(frozen=True, slots=True)
class RefusalVerdict:
    is_refusal: bool
    rule: str  # which construction fired, or why none did; never answer text


class RefusalDetector:
    """Detects refusals in answer text. Stateless after construction; safe to share."""

    def __init__(
        self, extra_phrases: Iterable[str] = (), disabled_phrases: Iterable[str] = ()
    ) -> None:
        """``extra_phrases``: literal phrases that open a refusal (after an optional preamble),
        matched by their words, ignoring case and punctuation; reported as rule ``extra[i]``.
        ``disabled_phrases``: names of built-in rules (``DEFAULT_RULES``) to switch off."""
        disabled = set(disabled_phrases)
        unknown = disabled - set(DEFAULT_RULES) - {"short_answer"}
        if unknown:
            raise ValueError(f"unknown refusal rules: {', '.join(sorted(unknown))}")
        rules = {k: v for k, v in DEFAULT_RULES.items() if k not in disabled}
        for i, phrase in enumerate(extra_phrases):
            words = re.findall(r"[\w']+", _clean(phrase))
            if not words:
                raise ValueError(f"extra refusal phrase #{i} is empty")
            rules[f"extra[{i}]"] = r"[\W_]+".join(re.escape(w) for w in words) + r"\b"
        self._rules = [(name, re.compile(rf"{_PREAMBLE}(?:{rx})")) for name, rx in rules.items()]
        self._short = None if "short_answer" in disabled else re.compile(_SHORT_RULE)

    def detect(self, text: str) -> RefusalVerdict:
        if not text.strip():
            return RefusalVerdict(False, "empty")
        cleaned = _clean(text[:SCAN_CHARS])
        if not cleaned.strip():
            return RefusalVerdict(False, "only_code_or_quotes")
        sentences = _sentences(cleaned)
        for n, sentence in enumerate(sentences):
            if n >= OPENING_SENTENCES or sentence.start >= OPENING_CHARS:
                break
            for name, rx in self._rules:
                m = rx.match(sentence.text)
                if m:
                    following = sentences[n + 1].text if n + 1 < len(sentences) else ""
                    if _ATTRIBUTION.match(sentence.text[m.end() :]) or _ATTRIBUTED_NEXT.match(
                        following
                    ):
                        return RefusalVerdict(False, f"{name}+speech")
                    rest = sentence.text[m.end() :] + " " + cleaned[sentence.end :]
                    return self._verdict(name, text, rest)
        body = " ".join(cleaned.split())
        if self._short is not None and len(body) <= SHORT_ANSWER_CHARS:
            m = self._short.search(body)
            if m:
                if _ATTRIBUTION.match(body[m.end() :]):
                    return RefusalVerdict(False, "short_answer+speech")
                return self._verdict("short_answer", text, body[m.end() :])
        return RefusalVerdict(False, "none")

    @staticmethod
    def _verdict(rule: str, original: str, rest: str) -> RefusalVerdict:
        if "```" in original or "~~~" in original:
            return RefusalVerdict(False, f"{rule}+code")
        for pivot in _PIVOT.finditer(rest[: OPENING_CHARS * 2]):
            clause = pivot.group(1)
            if _REDIRECT.search(clause):
                continue
            if _ANSWER_LEAD.search(clause) or (
                len(clause.split()) >= MIN_ANSWER_WORDS and not _OFFER.search(clause)
            ):
                return RefusalVerdict(False, f"{rule}+answer")
        return RefusalVerdict(True, rule)


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    start: int
    end: int


def _sentences(text: str) -> list[_Sentence]:
    out: list[_Sentence] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        piece = text[pos : m.start()]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append(_Sentence(" ".join(piece.split()), pos + lead, m.start()))
        pos = m.end()
        if pos > OPENING_CHARS * 2:
            break
    piece = text[pos:]
    if piece.strip() and pos <= OPENING_CHARS * 2:
        lead = len(piece) - len(piece.lstrip())
        out.append(_Sentence(" ".join(piece.split()), pos + lead, len(text)))
    return out


def _clean(text: str) -> str:
    """Lower-cased, NFKC, apostrophes folded; code, quotes, reported speech, dialogue and
    markdown removed. Each pattern runs only when the text holds a character it cannot match
    without (the result is the same; most answers skip most of them)."""
    t = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    if "```" in t or "~~~" in t:
        t = _CODE_FENCE.sub(" ", t)
    if "`" in t:
        t = _INLINE_CODE.sub(" code ", t)
    if ">" in t:
        t = _BLOCK_QUOTE.sub(" ", t)
    if ":" in t and len(_SPEAKER_LINE.findall(t)) >= 2:
        t = _SPEAKER_LINE.sub(" ", t)
    if "—" in t or "–" in t:
        t = _DASH_LINE.sub(" ", t)
    if '"' in t or "\u201c" in t or "\u00ab" in t:
        t = _QUOTED.sub(" quote ", t)
    if "'" in t:
        t = _SINGLE_QUOTED.sub(" quote ", t)
    if ":" in t:
        t = _REPORTED.sub(" quote ", t)
    t = _MARKDOWN.sub("", t)
    if "*" in t or "_" in t:
        t = _EMPHASIS.sub("", t)
    return t.lower()
