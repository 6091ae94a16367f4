"""The adapter contract: pure values in, pure values out.

An adapter turns a :class:`~uniwizard.types.BlindRequest` into an :class:`HttpRequest` for one
provider's wire format and parses what comes back (a complete body, an error body, or stream
events) into :class:`ParsedResponse` / :class:`ProviderError` / :class:`StreamDelta`. Adapters do
no I/O and keep no global state; the caller's I/O layer sends the request with httpx and feeds
the adapter the bytes / SSE events it receives.

Streams: ``adapter.new_stream()`` returns a per-stream :class:`StreamState`. Feed it every
:class:`~caller_svc.sse.SSEEvent`; each call returns the deltas to forward. ``done`` turns true on
the provider's end marker (OpenAI ``[DONE]``, Anthropic ``message_stop``, a Gemini chunk carrying a
``finishReason`` or ``promptFeedback.blockReason``). ``finish()`` assembles the answer; it raises
:class:`StreamIncomplete` only when neither the end marker nor a finish reason was seen (a stream
that carried its finish reason but lost its final marker is a complete answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from uniwizard.config_types import BackendConfig
from uniwizard.types import BlindRequest, Outcome, ToolCall, Usage

if TYPE_CHECKING:
    from caller_svc.sse import SSEEvent

# Normalised finish reasons.
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_TOOL_CALLS = "tool_calls"
FINISH_CONTENT_FILTER = "content_filter"
FINISH_REFUSAL = "refusal"
FINISH_OTHER = "other"
FINISH_REASONS = (
    FINISH_STOP,
    FINISH_LENGTH,
    FINISH_TOOL_CALLS,
    FINISH_CONTENT_FILTER,
    FINISH_REFUSAL,
    FINISH_OTHER,
)

MAX_ERROR_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What to send. Header names are lower-case."""

    method: str  # "POST" / "GET"
    url: str  # full URL
    headers: dict[str, str]
    json: dict[str, Any] | None = None  # body to send as JSON


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """A complete answer (from a 200 body, or assembled from a stream)."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str  # normalised: one of FINISH_REASONS
    raw_finish_reason: str  # the provider's own value
    usage: Usage | None  # None when the provider gave none
    response_model: str
    provider_refusal: bool  # the provider's own refusal / safety-block signal
    refusal_detail: str = ""  # e.g. "openai message.refusal"; never prompt text


@dataclass(frozen=True, slots=True)
class ProviderError:
    """A non-2xx answer (or an error body / error event), classified."""

    outcome: Outcome
    message: str  # the provider's error message, at most MAX_ERROR_MESSAGE characters
    http_status: int  # 0 when the error arrived inside a 200 stream and carried no status
    retry_after_s: float = 0.0
    provider_code: str = ""  # e.g. "rate_limit_error", "context_length_exceeded"


@dataclass(slots=True)
class StreamDelta:
    """What one stream event contributes to the answer."""

    text: str = ""
    tool_call: ToolCall | None = None  # a COMPLETE tool call, emitted once its arguments are


class MalformedResponse(Exception):
    """An unparseable body or stream event. The message says what is wrong, never the content."""


class StreamIncomplete(Exception):
    """The stream ended before its provider's end marker (and without a finish reason)."""


class UnsupportedInput(ValueError):
    """The request holds something this provider cannot take (e.g. audio for Anthropic).

    The caller turns it into ``bad_request``; the message names what (media type, field), never
    the content.
    """


class ProviderStreamError(Exception):
    """The provider reported an error inside a stream (e.g. Anthropic ``event: error``)."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(f"{error.outcome.value}: {error.message}")
        self.error = error


class StreamState(Protocol):
    """Per-stream accumulator returned by :meth:`Adapter.new_stream`."""

    @property
    def done(self) -> bool:
        """The provider's end marker was seen."""
        ...

    @property
    def finish_seen(self) -> bool:
        """A finish reason (or end marker) was seen: ``finish()`` will not raise."""
        ...

    @property
    def complete(self) -> bool:
        """Nothing more is expected: the end marker, or the finish reason plus usage, was seen.

        The I/O layer may stop reading once this is true, so a stream that never sends its final
        marker still finalises promptly and with usage.
        """
        ...

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        """Consume one event; raises MalformedResponse or ProviderStreamError."""
        ...

    def finish(self) -> ParsedResponse:
        """The assembled answer; raises StreamIncomplete when the stream was cut."""
        ...


class Adapter(Protocol):
    name: str

    def build_request(
        self, backend: BackendConfig, request: BlindRequest, api_key: str | None, *, stream: bool
    ) -> HttpRequest: ...

    def parse_response(self, body: bytes) -> ParsedResponse: ...

    def parse_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> ProviderError: ...

    def new_stream(self) -> StreamState: ...

    def probe_request(self, backend: BackendConfig, api_key: str | None) -> HttpRequest: ...
