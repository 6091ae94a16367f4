"""The canonical form and its offset map (caller_svc.normalize)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from caller_svc.normalize import canon_char, collapse, normalize, word_spans, words


def _per_char(text: str) -> str:
    return "".join(canon_char(c) for c in text)


def test_ascii_fast_path_is_exact() -> None:
    for cp in range(128):
        assert canon_char(chr(cp)) == chr(cp).lower()


def test_canonical_pieces_are_stable_under_lower() -> None:
    # normalize() lowers after the non-ASCII pass; that is only exact if pieces are lower case.
    rng = random.Random(7)
    sample = list(range(0x80, 0x3000)) + [rng.randrange(0x3000, 0x110000) for _ in range(20000)]
    for cp in sample:
        if 0xD800 <= cp < 0xE000:
            continue
        piece = canon_char(chr(cp))
        assert piece.lower() == piece, hex(cp)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_normalize_equals_per_char_definition(text: str) -> None:
    norm = normalize(text)
    assert norm.text == _per_char(text)
    idx = norm.index()
    assert len(idx) == len(norm.text)
    for j, i in enumerate(idx):
        assert norm.text[j] in canon_char(text[i])


def test_folds() -> None:
    cases = {
        "Ｔｉｍｍｙ": "timmy",
        "T\u200bi\u200cm\u200dm\u2060y\ufeff": "timmy",
        "\u202eT\u202dimmy\u2066\u2069\u200e\u200f": "timmy",
        "\u0422\u0456\u043c\u043c\u0443": "timmy",  # Cyrillic
        "\u03a4\u0399\u039c\u039c\u03a5": "timmy",  # Greek capitals
        "\u03c4\u03b9\u03bc\u03bc\u03b3": "timmy",  # Greek small
        "\u1d1b\u026a\u1d0d\u1d0d\u028f": "timmy",  # small capitals
        "\u13a2\u13a5\u13b7\u13b7\u13a9": "timmy",  # Cherokee
        "𝐓𝐢𝐦𝐦𝐲": "timmy",
        "Ti\u0301mmy": "timmy",
        "I\u2019m": "i'm",
    }
    for raw, want in cases.items():
        assert normalize(raw).text == want, raw


def test_original_span_covers_vanishing_characters() -> None:
    text = "say Ti\u200bmmy\u0301\u200b now"
    norm = normalize(text)
    start = norm.text.index("ti")
    s, e = norm.original_span(start, start + 5)
    assert text[s:e] == "Ti\u200bmmy\u0301\u200b"


def test_collapse_and_words() -> None:
    canon = normalize("T.i.m.m.y — it's a Soul-file!").text
    assert collapse(canon) == "timmyitsasoulfile"
    assert words(canon) == ["t", "i", "m", "m", "y", "its", "a", "soul", "file"]
    assert [canon[s:e].replace("'", "") for s, e in word_spans(canon)] == words(canon)
    assert words(normalize("'quoted' rock 'n' roll ''").text) == ["quoted", "rock", "n", "roll"]
