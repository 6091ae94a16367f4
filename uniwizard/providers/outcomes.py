"""Pure error classification shared by the provider adapters.

The order of evidence, strongest first:

1. the provider's own error code/type (e.g. Anthropic ``overloaded_error``, OpenAI
   ``context_length_exceeded``, Gemini ``RESOURCE_EXHAUSTED``), mapped by each adapter;
2. the message: context-length and content-policy wording (:func:`is_context_window_error`,
   :func:`is_content_policy_error`), which providers send as plain 400s;
3. the HTTP status (:func:`outcome_for_status`).
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping

from uniwizard.types import Outcome

_STATUS_TABLE: dict[int, Outcome] = {
    401: Outcome.AUTH,
    403: Outcome.AUTH,
    408: Outcome.TIMEOUT,
    # 413 "request too large": the request does not fit this backend; one with a larger
    # context / request limit may take it, so it is treated as a context-window failure.
    413: Outcome.CONTEXT_WINDOW,
    429: Outcome.RATE_LIMITED,
    500: Outcome.SERVER_ERROR,
    502: Outcome.SERVER_ERROR,
    503: Outcome.OVERLOADED,
    504: Outcome.SERVER_ERROR,
    529: Outcome.OVERLOADED,
}


def outcome_for_status(status: int) -> Outcome:
    """The fallback classification of an HTTP status when the body says nothing better."""
    if status in _STATUS_TABLE:
        return _STATUS_TABLE[status]
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if 400 <= status < 500:
        return Outcome.BAD_REQUEST
    if status >= 500:
        return Outcome.SERVER_ERROR
    return Outcome.MALFORMED  # 1xx / 3xx / nonsense: not an answer we can use


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup for plain dicts and multidicts (aiohttp, httpx) alike."""
    value = headers.get(name)
    if value is not None:
        return value
    lname = name.lower()
    for key, val in headers.items():
        if key.lower() == lname:
            return val
    return None


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|h|m|s)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: float) -> float:
    """A usable wait: finite and not negative (``inf``/``nan`` hints are nonsense: 0.0)."""
    return value if math.isfinite(value) and value > 0 else 0.0


def parse_duration(text: str) -> float:
    """Seconds from a duration such as ``"7s"``, ``"56.9s"``, ``"6m0s"``, ``"200ms"``, ``"12"``.

    A bare number means seconds. Returns 0.0 when nothing parses.
    """
    text = text.strip()
    if not text:
        return 0.0
    try:
        return _seconds(float(text))
    except ValueError:
        pass
    total = 0.0
    matched = False
    for number, unit in _DURATION_RE.findall(text):
        total += float(number) * _DURATION_UNITS[unit.lower()]
        matched = True
    return _seconds(total) if matched else 0.0


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    ``now`` (Unix seconds) is only needed for the HTTP-date form; it defaults to the current
    time. Returns 0.0 when there is no usable hint. Never negative.
    """
    ms = header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return _seconds(float(ms.strip()) / 1000.0)
        except ValueError:
            pass
    value = header(headers, "retry-after")
    if value is None:
        return 0.0
    value = value.strip()
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return 0.0
    if when is None:
        return 0.0
    current = time.time() if now is None else now
    return _seconds(when.timestamp() - current)


_CONTEXT_CODES = frozenset(
    {
        "context_length_exceeded",  # OpenAI
        "exceed_context_size_error",  # llama.cpp server
        "string_above_max_length",  # OpenAI, one message too long
        "request_too_large",  # Anthropic 413
    }
)
_CONTEXT_PATTERNS = re.compile(
    "|".join(
        [
            r"maximum context length",  # OpenAI: "This model's maximum context length is ..."
            r"context[_ ]length[_ ]exceeded",
            r"prompt is too long",  # Anthropic
            r"exceed context limit",  # Anthropic: "input length and `max_tokens` exceed ..."
            r"input token count.*exceeds",  # Gemini
            r"exceeds the maximum number of tokens",  # Gemini
            r"exceeds the available context size",  # llama.cpp
            r"exceeded model token limit",  # Moonshot / Kimi
            r"maximum prompt length",  # xAI / Grok
            r"too many tokens",
            r"context window",
        ]
    ),
    re.IGNORECASE,
)

_POLICY_CODES = frozenset(
    {
        "content_policy_violation",  # OpenAI (images)
        "content_filter",  # OpenAI / Azure OpenAI
        "invalid_prompt",  # OpenAI: prompt flagged as violating the usage policy
        "responsibleaipolicyviolation",  # Azure
    }
)
_POLICY_PATTERNS = re.compile(
    "|".join(
        [
            r"content (management |filtering )?policy",  # Anthropic "Output blocked by content
            # filtering policy", Azure "content management policy", OpenAI "content policy"
            r"usage polic(y|ies)",  # OpenAI "flagged as potentially violating our usage policy"
            r"safety (system|settings|filter)",
            r"prohibited content",  # Gemini
            r"blocked due to safety",
        ]
    ),
    re.IGNORECASE,
)


def is_context_window_error(message: str, code: str = "") -> bool:
    """Whether an error says the input did not fit the model's context window."""
    if code.strip().lower() in _CONTEXT_CODES:
        return True
    return bool(_CONTEXT_PATTERNS.search(message))


def is_content_policy_error(message: str, code: str = "") -> bool:
    """Whether an error is a provider policy rejection / content filter."""
    if code.strip().lower() in _POLICY_CODES:
        return True
    return bool(_POLICY_PATTERNS.search(message))


def classify_error(status: int, message: str, codes: tuple[str, ...] = ()) -> Outcome:
    """Status plus message/code evidence, for providers with no more specific mapping.

    Context-window and content-policy wording overrides a generic 400/403/404/413 (providers send
    both as plain 4xx); it never overrides a 429/5xx, whose retry semantics matter more.
    """
    base = outcome_for_status(status)
    if 400 <= status < 500 and status not in (401, 408, 429):
        if any(is_context_window_error(message, c) for c in codes or ("",)):
            return Outcome.CONTEXT_WINDOW
        if any(is_content_policy_error(message, c) for c in codes or ("",)):
            return Outcome.CONTENT_POLICY
    return base


def truncate(message: str, limit: int = 300) -> str:
    """Collapse whitespace and cut to ``limit`` characters (with an ellipsis when cut)."""
    message = " ".join(message.split())
    if len(message) <= limit:
        return message
    return message[: limit - 1] + "…"
