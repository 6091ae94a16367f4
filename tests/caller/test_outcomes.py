"""Pure error classification: status table, Retry-After, context-window and policy wording."""

from __future__ import annotations

import pytest

from uniwizard.providers.outcomes import (
    classify_error,
    is_content_policy_error,
    is_context_window_error,
    outcome_for_status,
    parse_duration,
    parse_retry_after,
    truncate,
)
from uniwizard.types import Outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (429, Outcome.RATE_LIMITED),
        (503, Outcome.OVERLOADED),
        (529, Outcome.OVERLOADED),
        (500, Outcome.SERVER_ERROR),
        (502, Outcome.SERVER_ERROR),
        (504, Outcome.SERVER_ERROR),
        (501, Outcome.SERVER_ERROR),
        (401, Outcome.AUTH),
        (403, Outcome.AUTH),
        (408, Outcome.TIMEOUT),
        (413, Outcome.CONTEXT_WINDOW),
        (400, Outcome.BAD_REQUEST),
        (404, Outcome.BAD_REQUEST),
        (422, Outcome.BAD_REQUEST),
        (200, Outcome.SUCCESS),
        (302, Outcome.MALFORMED),
    ],
)
def test_status_table(status: int, outcome: Outcome) -> None:
    assert outcome_for_status(status) is outcome


def test_retry_after_seconds_ms_and_case() -> None:
    assert parse_retry_after({"Retry-After": "20"}) == 20.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"Retry-After-Ms": "nonsense", "Retry-After": "3"}) == 3.0
    assert parse_retry_after({}) == 0.0
    assert parse_retry_after({"retry-after": "-5"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) == 0.0


def test_retry_after_http_date() -> None:
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}
    assert parse_retry_after(headers, now=1445412480.0) == 30.0  # 07:28:00 GMT
    assert parse_retry_after(headers, now=1445412600.0) == 0.0  # already past


def test_retry_after_with_httpx_headers() -> None:
    import httpx

    assert parse_retry_after(httpx.Headers({"Retry-After": "4"})) == 4.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7s", 7.0),
        ("56.948473s", 56.948473),
        ("6m0s", 360.0),
        ("200ms", 0.2),
        ("12", 12.0),
        ("1h2m3s", 3723.0),
        ("", 0.0),
        ("later", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("This model's maximum context length is 128000 tokens. However, ...", ""),
        ("whatever", "context_length_exceeded"),
        ("prompt is too long: 215321 tokens > 200000 maximum", ""),
        ("input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000", ""),
        ("The input token count (1357402) exceeds the maximum number of tokens allowed", ""),
        ("the request exceeds the available context size, try increasing it", ""),
        ("x", "exceed_context_size_error"),
        ("Invalid request: Your request exceeded model token limit: 262144", ""),
        ("This model's maximum prompt length is 131072 but the request contains 140123", ""),
    ],
)
def test_context_window_wording(message: str, code: str) -> None:
    assert is_context_window_error(message, code)
    assert not is_content_policy_error(message, code)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Your request was rejected as a result of our safety system.", ""),
        ("x", "content_policy_violation"),
        ("x", "content_filter"),
        ("Output blocked by content filtering policy", ""),
        ("Invalid prompt: your prompt was flagged as potentially violating our usage policy.", ""),
        (
            "The response was filtered due to the prompt triggering Azure OpenAI's content "
            "management policy.",
            "",
        ),
    ],
)
def test_content_policy_wording(message: str, code: str) -> None:
    assert is_content_policy_error(message, code)
    assert not is_context_window_error(message, code)


def test_plain_errors_are_neither() -> None:
    message = "Invalid value for 'temperature': expected a number between 0 and 2."
    assert not is_context_window_error(message)
    assert not is_content_policy_error(message)


def test_classify_error_wording_beats_generic_4xx_but_not_429_or_5xx() -> None:
    assert classify_error(400, "prompt is too long: 3 > 2") is Outcome.CONTEXT_WINDOW
    assert classify_error(400, "x", ("content_filter",)) is Outcome.CONTENT_POLICY
    assert classify_error(400, "missing field") is Outcome.BAD_REQUEST
    assert classify_error(429, "too many tokens per minute") is Outcome.RATE_LIMITED
    assert classify_error(500, "prompt is too long") is Outcome.SERVER_ERROR


def test_truncate() -> None:
    assert truncate("a  b\n c") == "a b c"
    cut = truncate("x" * 400, 300)
    assert len(cut) == 300 and cut.endswith("…")
