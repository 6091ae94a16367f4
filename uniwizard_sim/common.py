"""Neutral data types shared by the provider dialects of the simulator.

Each provider module turns its wire request into a :class:`Conversation`, the
simulator plans an :class:`Answer` from it (see :mod:`uniwizard_sim.textgen`), and
the provider module renders the answer back into its own wire format. Errors are
returned as :class:`ErrorReply` values, never raised, so everything stays pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Finish = Literal["stop", "length", "tool", "refusal", "content_filter", "safety", "blocked"]
"""Neutral finish reasons; each provider maps them to its own vocabulary.

``blocked`` is a prompt-level block (Gemini ``promptFeedback.blockReason``)."""

EventKind = Literal["meta", "content", "end", "done"]
"""Role of one stream event: ``content`` events carry answer text or tool
arguments (they are what ``after_chunks`` counts), ``done`` is the terminal
marker (OpenAI ``[DONE]``, Anthropic ``message_stop``) that ``no_done`` drops."""


@dataclass(frozen=True, slots=True)
class ToolDef:
    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A structured-output request: the answer is JSON text valid against ``schema``
    (JSON Schema, or Gemini's OpenAPI subset), or any JSON object when it is None."""

    schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the simulator needs to know about one generation request."""

    model: str
    prompt_texts: tuple[str, ...]
    last_user_text: str
    attachments: int = 0
    tools: tuple[ToolDef, ...] = ()
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    output: OutputFormat | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A planned answer, independent of the wire format."""

    text: str | None
    finish: Finish
    prompt_tokens: int
    completion_tokens: int
    chunks: tuple[str, ...] = ()
    tool_call: ToolCall | None = None
    refusal: str | None = None
    safety_reason: str = "SAFETY"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An HTTP error answer: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    frame: bytes
    kind: EventKind


@dataclass(frozen=True, slots=True)
class Ids:
    """Deterministic identifiers for one response, derived from the request seq."""

    seq: int
    created: int

    @property
    def suffix(self) -> str:
        return f"sim{self.seq:08d}"


def retry_headers(retry_after: float | None, retry_after_ms: int | None) -> dict[str, str]:
    """``Retry-After`` (seconds; integer when whole) and ``retry-after-ms`` headers."""
    out: dict[str, str] = {}
    if retry_after is not None:
        out["Retry-After"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:g}"
        )
    if retry_after_ms is not None:
        out["retry-after-ms"] = str(retry_after_ms)
    return out


def json_type(value: Any) -> str:
    """JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Dialect(Protocol):
    """What a provider module (``openai``, ``anthropic``, ``gemini``) provides."""

    NAME: str
    DEFAULT_MODELS: tuple[str, ...]
    MALFORMED_BODY: bytes
    MALFORMED_FRAME: bytes

    def auth_error(
        self, headers: Mapping[str, str], query: Mapping[str, str], target: str
    ) -> ErrorReply | None: ...

    def invalid_json(self) -> ErrorReply: ...

    def parse_request(
        self, body: Any, *, model: str | None = None, stream: bool = False
    ) -> Conversation | ErrorReply: ...

    def build_response(self, conv: Conversation, answer: Answer, ids: Ids) -> dict[str, Any]: ...

    def stream_events(self, conv: Conversation, answer: Answer, ids: Ids) -> list[StreamEvent]: ...

    def status_error(
        self,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        model: str = "",
    ) -> ErrorReply: ...

    def content_filter_error(self, message: str | None) -> ErrorReply | None: ...

    def stream_error_event(self, err: ErrorReply) -> bytes: ...

    def not_found(self, path: str) -> ErrorReply: ...

    def list_models(self, models: list[str] | tuple[str, ...]) -> dict[str, Any]: ...

    def model_info(self, model: str) -> dict[str, Any]: ...
