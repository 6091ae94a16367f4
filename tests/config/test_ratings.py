"""What a valid rating is (uniwizard/ratings.py): scores, stars, labels, ids."""

from __future__ import annotations

import re

import pytest

from uniwizard.ratings import InvalidRating, parse_score, rating


def test_scores_and_stars() -> None:
    assert parse_score("0.8") == (0.8, False)
    assert parse_score(" 4/5 ") == (4.0, True)
    assert rating("r1", "", 0.8).score == 0.8
    assert rating("r1", "", 4, five_point=True).score == 0.75
    assert rating("r1", "", 1, five_point=True).score == 0.0
    assert rating("", "abc", 1.0).trace_id == "abc"


@pytest.mark.parametrize(
    ("args", "kw", "message"),
    [
        (("", "", 0.5), {}, "request_id (or trace_id) is required"),
        (("r1", "", 1.5), {}, "score must be from 0 to 1"),
        (("r1", "", 6), {"five_point": True}, "from 1 to 5, got 6"),
        (("r1", "", float("nan")), {}, "score must be a number"),
        (("r1", "", 0.5, "Totally wrong!"), {}, "label must be a short token"),
        (("r1", "", 0.5, "x" * 40), {}, "label must be a short token"),
        (("r\n1", "", 0.5), {}, "request_id is not an id"),
    ],
)
def test_bad_ratings_say_what_is_wrong(args: tuple, kw: dict, message: str) -> None:
    with pytest.raises(InvalidRating, match=re.escape(message)):
        rating(*args, **kw)


@pytest.mark.parametrize("text", ["good", "4/10", "", "1/5/5"])
def test_bad_score_text(text: str) -> None:
    with pytest.raises(InvalidRating):
        parse_score(text)
