"""Ratings the agent gives its answers: what a valid one is. Pure.

A score is in [0, 1], or 1 to 5 stars normalised to ``(stars - 1) / 4``. A label is an optional
short token (``wrong``, ``unhelpful``, ``great``...): lower-case letters, digits, ``_`` and
``-``, at most 32 characters, so free text can never reach a span or a log through it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

LABEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class Rating:
    request_id: str
    trace_id: str
    score: float  # [0, 1]
    label: str = ""


class InvalidRating(ValueError):
    """The message names the field and what is wrong."""


def normalise(score: float, *, five_point: bool) -> float:
    """A score in [0, 1]; raises InvalidRating naming the range it must be in."""
    if not math.isfinite(score):
        raise InvalidRating(f"score must be a number, got {score}")
    if five_point:
        if not 1.0 <= score <= 5.0:
            raise InvalidRating(f"score on the 1-5 scale must be from 1 to 5, got {score:g}")
        return (score - 1.0) / 4.0
    if not 0.0 <= score <= 1.0:
        raise InvalidRating(f"score must be from 0 to 1 (or 1-5 stars), got {score:g}")
    return score


def rating(
    request_id: str, trace_id: str, score: float, label: str = "", *, five_point: bool = False
) -> Rating:
    """A checked rating; raises InvalidRating naming what is wrong."""
    request_id, trace_id = request_id.strip(), trace_id.strip()
    if not request_id and not trace_id:
        raise InvalidRating("request_id (or trace_id) is required: which answer is rated?")
    for name, value in (("request_id", request_id), ("trace_id", trace_id)):
        if len(value) > MAX_ID_CHARS or not value.isprintable():
            raise InvalidRating(f"{name} is not an id (printable, at most {MAX_ID_CHARS} chars)")
    if label and not LABEL_RE.match(label):
        raise InvalidRating(
            "label must be a short token: lower-case letters, digits, '_' or '-', starting "
            "with a letter, at most 32 characters (e.g. wrong, unhelpful, great)"
        )
    return Rating(request_id, trace_id, normalise(score, five_point=five_point), label)


def parse_score(text: str) -> tuple[float, bool]:
    """A score as people write it: ``0.8`` (0 to 1) or ``4/5`` (stars). Returns (score,
    five_point); raises InvalidRating."""
    text = text.strip()
    stars, slash, of = text.partition("/")
    try:
        if slash:
            if of.strip() != "5":
                raise InvalidRating(f"score {text!r}: stars are out of 5, like 4/5")
            return float(stars), True
        return float(text), False
    except ValueError:
        raise InvalidRating(
            f"score {text!r} is not a number: give 0 to 1 (e.g. 0.8) or stars (e.g. 4/5)"
        ) from None
