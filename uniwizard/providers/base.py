"""The adapter contract: pure values in, pure values out.

An adapter turns a :class:`~uniwizard.types.BlindRequest` into an :class:`HttpRequest` for one
provider's wire format and parses what comes back into a :class:`ParsedResponse` (an answer) or
a :class:`~uniwizard.types.Failure` (the provider said no, or said something unparseable).
Adapters do no I/O and keep no global state: :mod:`uniwizard.transport` moves the bytes, and
the readers in :mod:`uniwizard.providers.stream` hand those bytes to the adapter.

Streams: ``adapter.new_stream()`` returns a per-stream :class:`StreamState`. Feed it every
:class:`~uniwizard.providers.sse.SSEEvent`; each call returns the deltas to forward.
``finish_seen`` turns true on the provider's finish reason or end marker (OpenAI ``[DONE]``,
Anthropic ``message_stop``, a Gemini chunk carrying a ``finishReason`` or
``promptFeedback.blockReason``); ``complete`` once nothing more is expected. ``finish()``
assembles the answer; it raises :class:`StreamIncomplete` only when neither the end marker nor a
finish reason was seen (a stream that carried its finish reason but lost its final marker is a
complete answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from uniwizard.config_types import BackendConfig
from uniwizard.types import BlindRequest, Delta, Failure, ToolCall, Usage

if TYPE_CHECKING:
    from uniwizard.providers.sse import SSEEvent

__all__ = [
    "FINISH_REASONS",
    "MAX_ERROR_MESSAGE",
    "Adapter",
    "Delta",
    "Failure",
    "HttpRequest",
    "MalformedResponse",
    "ParsedResponse",
    "ProviderStreamError",
    "StreamIncomplete",
    "StreamState",
    "UnsupportedInput",
]

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
    """The provider reported an error inside a stream (e.g. Anthropic ``event: error``) or in a
    body sent with a 2xx status (OpenRouter's ``{"error": ...}`` with 200)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.outcome.value}: {failure.message}")
        self.failure = failure


class StreamState(Protocol):
    """Per-stream accumulator returned by :meth:`Adapter.new_stream`."""

    @property
    def finish_seen(self) -> bool:
        """A finish reason (or end marker) was seen: ``finish()`` will not raise."""
        ...

    @property
    def complete(self) -> bool:
        """Nothing more is expected: the end marker, or the finish reason plus usage, was seen.

        The reader may stop once this is true, so a stream that never sends its final marker
        still finalises promptly and with usage.
        """
        ...

    def feed(self, event: SSEEvent) -> list[Delta]:
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

    def parse_response(self, body: bytes) -> ParsedResponse:
        """A 2xx body; raises MalformedResponse, or ProviderStreamError for an error object."""
        ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> Failure: ...

    def new_stream(self) -> StreamState: ...

    def probe_request(self, backend: BackendConfig, api_key: str | None) -> HttpRequest: ...
