"""Canonical comparison form of text, with a map back to the original offsets.

The identity guard compares names and soul passages against this form, then redacts the
*original* span. The canonical form of a text is the concatenation of the canonical form of each
of its code points (so every canonical character knows which original character produced it):

1. format characters (Unicode category ``Cf``: zero-width space/joiners U+200B-U+200D, word
   joiner U+2060, BOM U+FEFF, bidi controls U+200E/U+200F/U+202A-U+202E/U+2066-U+2069, soft
   hyphen, tag characters, ...) are dropped;
2. NFKC (full-width ``Ｔ``, mathematical ``𝐓``, circled ``ⓣ``, ligatures ``ﬁ`` ...);
3. upper-case look-alikes from other scripts are folded to Latin *before* case folding, because
   case folding loses the shape (Greek ``Υ`` looks like ``Y`` but ``υ`` like ``u``);
4. case folding;
5. canonical decomposition with combining marks (``Mn``, ``Me``) dropped (``í`` -> ``i``);
6. lower-case look-alikes (Cyrillic, Greek, Armenian, small capitals, dotless i) folded to Latin;
   typographic apostrophes become ``'``; any other non-ASCII character that is not a letter or
   digit (dashes, quotes, symbols, exotic spaces) becomes one ASCII space, since all that ever
   matters about it is that it separates.

ASCII text takes a fast path (``str.lower``) that is exactly equivalent, because no table
contains an ASCII key. Per-code-point NFKC differs from whole-string NFKC only for composing
sequences, and step 5 removes the marks those would compose, so the two agree on letters.

Leetspeak digits are not folded here (that would damage every number in the text); the name
matcher in ``caller_svc.identity`` accepts them inside a name instead.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# fmt: off
# Upper-case characters whose *shape* is a Latin capital (folded before case folding).
_UPPER_LOOKALIKES: dict[str, str] = {
    # Cyrillic capitals
    "А": "a", "В": "b", "Е": "e", "Ё": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p",
    "С": "c", "Т": "t", "У": "y", "Х": "x", "Ѕ": "s", "І": "i", "Ї": "i", "Ј": "j", "Ү": "y",
    "Ԁ": "d", "Ԛ": "q", "Ԝ": "w", "Һ": "h", "Ӏ": "l",
    # Greek capitals
    "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n",
    "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x", "Ϲ": "c", "Ϳ": "j",
}

# Lower-case (or caseless) characters whose shape is a Latin small letter.
_LOWER_LOOKALIKES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ү": "y",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "п": "n", "ь": "b", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "m", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ζ": "z", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Armenian
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "զ": "q",
    # Latin oddities and small capitals
    "ı": "i", "ȷ": "j", "ɩ": "i", "ǀ": "l", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e",
    "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o",
    "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # Cherokee (case folding maps to these capitals)
    "Ꭰ": "d", "Ꭱ": "r", "Ꭲ": "t", "Ꭵ": "i", "Ꭹ": "y", "Ꭻ": "j", "Ꭼ": "e", "Ꮃ": "w", "Ꮇ": "m",
    "Ꮋ": "h", "Ꮐ": "g", "Ꮓ": "z", "Ꮢ": "p", "Ꮪ": "s", "Ꮯ": "c", "Ꮩ": "v", "Ꮮ": "l", "Ꮶ": "k",
    "Ᏼ": "b",
    # typographic apostrophes (kept word-internal by the word tokeniser)
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'",
}
# fmt: on

assert not any(k.isascii() for k in (*_UPPER_LOOKALIKES, *_LOWER_LOOKALIKES))

_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
_ALNUM = re.compile(r"[^\W_]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_WORD_SPAN = re.compile(r"(?:[^\W_]|')+")


class _Table(dict[int, int | str | None]):
    """A ``str.translate`` table over all of Unicode, filled lazily (C-speed once warm)."""

    def __init__(self, other: str | None, apostrophe: str | None) -> None:
        super().__init__()
        self._other = other
        self[ord("'")] = apostrophe

    def __missing__(self, code: int) -> int | str | None:
        value: int | str | None = code if chr(code).isalnum() else self._other
        self[code] = value
        return value


# collapse(): letters and digits only.
_COLLAPSE = _Table(None, None)
# Leetspeak digits and their letters folded to one representative (same length as the input).
LEET_FOLD = str.maketrans("0134578l9", "oieastbig")
# words(): letters and digits; apostrophes vanish ("i'm" == "im"); anything else separates.
_WORDS = _Table(" ", None)


def canon_char(ch: str) -> str:
    """The canonical form of one code point (possibly empty, possibly several characters)."""
    if ch.isascii():
        return ch.lower()
    if unicodedata.category(ch) == "Cf":
        return ""
    out: list[str] = []
    for c in unicodedata.normalize("NFKC", ch):
        c = _UPPER_LOOKALIKES.get(c, c)
        for d in c.casefold():
            for e in unicodedata.normalize("NFD", d):
                if unicodedata.category(e) in _DROPPED_CATEGORIES:
                    continue
                e = _LOWER_LOOKALIKES.get(e, e)
                # Non-ASCII punctuation, symbols and spaces only ever separate: one ASCII space
                # keeps the canonical text ASCII (and fast) for mostly-Latin input.
                out.append(e if e.isascii() or e.isalnum() else " ")
    # A few scripts (Cherokee) case-fold to capitals; lower() makes the result stable under
    # lower(), which the fast path of ``normalize`` relies on.
    return "".join(out).lower()


class _CanonTable(dict[int, str]):
    """``canon_char`` as a lazily filled ``str.translate`` table."""

    def __missing__(self, code: int) -> str:
        value = self[code] = canon_char(chr(code))
        return value


_CANON = _CanonTable()


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text in canonical form; ``text[j]`` came from ``original[index()[j]]``."""

    original: str
    text: str

    def _pieces(self) -> list[str]:
        return [_CANON[ord(c)] for c in self.original]

    def index(self) -> list[int]:
        """For every canonical character, the offset of the original character it came from."""
        if len(self.text) == len(self.original) and self.original.isascii():
            return list(range(len(self.text)))
        idx: list[int] = []
        for i, piece in enumerate(self._pieces()):
            if piece:
                idx.extend([i] * len(piece))
        return idx

    def original_span(
        self, start: int, end: int, index: list[int] | None = None
    ) -> tuple[int, int]:
        """Map a canonical span [start, end) to the original text.

        The end is extended over following characters that vanish in normalisation (combining
        marks, zero-width characters), so no dangling fragment is left behind.
        """
        idx = index if index is not None else self.index()
        o_start, o_end = idx[start], idx[end - 1] + 1
        while o_end < len(self.original) and not _CANON[ord(self.original[o_end])]:
            o_end += 1
        return o_start, o_end


def _canon_run(m: re.Match[str]) -> str:
    return m.group().translate(_CANON)


def normalize(text: str) -> Normalized:
    """Canonical comparison form of ``text`` (see the module docstring)."""
    if text.isascii():
        return Normalized(text, text.lower())
    # Non-ASCII runs through the table, then ASCII lowered; canonical pieces are already lower
    # case (``canon_char(c).lower() == canon_char(c)``, checked by the tests).
    return Normalized(text, _NON_ASCII_RUN.sub(_canon_run, text).lower())


def collapse(canonical: str) -> str:
    """The canonical text with everything but letters and digits removed."""
    return canonical.translate(_COLLAPSE)


def alnum_positions(canonical: str) -> list[int]:
    """For every character of ``collapse(canonical)``, its offset in ``canonical``."""
    return [m.start() for m in _ALNUM.finditer(canonical)]


def words(canonical: str) -> list[str]:
    """The words of a canonical text: maximal runs of letters, digits and apostrophes, with the
    apostrophes removed ("i'm" == "im"); every other character separates words."""
    return canonical.translate(_WORDS).split()


def word_spans(canonical: str) -> list[tuple[int, int]]:
    """Canonical [start, end) of every word, in the same order as ``words``."""
    return [m.span() for m in _WORD_SPAN.finditer(canonical) if m.group().strip("'")]
