"""Typed, protobuf-free values shared by the services.

Protobuf stays at the edges (``uniwizard.convert``); everything inside a service works on these
small frozen dataclasses. A *blind request* is everything a backend may see: a task-scoped system
prompt, messages, tool definitions and output limits. There is no field for who is asking.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from uniwizard.config_types import Budget


class Outcome(enum.StrEnum):
    """What happened on one attempt. The names are the design brief's outcome classes."""

    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    NETWORK = "network"
    AUTH = "auth"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    REFUSAL = "refusal"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    BAD_REQUEST = "bad_request"
    CANCELLED = "cancelled"
    IDENTITY_LEAK = "identity_leak"
    NO_BACKEND = "no_backend"


# Outcomes that say something is wrong with the provider (count toward the breaker).
PROVIDER_FAILURES = frozenset(
    {
        Outcome.RATE_LIMITED,
        Outcome.OVERLOADED,
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.NETWORK,
        Outcome.AUTH,
        Outcome.EMPTY,
        Outcome.TRUNCATED,
        Outcome.MALFORMED,
    }
)


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    media_type: str  # e.g. image/png, audio/wav
    data: bytes

    @property
    def modality(self) -> str:
        """text, image, audio or video, from the media type."""
        major = self.media_type.split("/", 1)[0].lower()
        return major if major in {"image", "audio", "video"} else "text"


# A tool name every provider accepts (OpenAI's rule, and Gemini's: a letter or "_" first).
TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ToolDef:
    name: str
    description: str = ""
    parameters_json: str = "{}"  # JSON Schema of the arguments, as JSON text


class OutputFormat(enum.StrEnum):
    """The shape an answer must take (OpenAI's ``response_format`` types)."""

    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output: any JSON object, or JSON valid against a schema."""

    type: OutputFormat = OutputFormat.TEXT
    name: str = ""  # json_schema: the schema's name
    schema_json: str = ""  # json_schema: the JSON Schema, as JSON text
    strict: bool = False  # json_schema: the provider must follow the schema exactly

    @property
    def structured(self) -> bool:
        return self.type is not OutputFormat.TEXT


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments_json: str = "{}"
    # Opaque state the provider that made the call needs back when it is replayed on the next
    # turn (Gemini's thoughtSignature, Anthropic's thinking blocks): JSON text written and read
    # only by that provider's adapter (uniwizard/providers/). Pass it back unchanged; never log it.
    provider_state: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()  # on assistant messages
    tool_call_id: str = ""  # on tool messages: which call this answers


@dataclass(frozen=True, slots=True)
class BlindRequest:
    """What leaves for a provider. Nothing else may."""

    messages: tuple[Message, ...]
    system_prompt: str = ""
    tools: tuple[ToolDef, ...] = ()
    max_output_tokens: int = 0  # 0 = the adapter's default
    temperature: float | None = None
    response_format: ResponseFormat | None = None  # None: text

    def attachments(self) -> tuple[Attachment, ...]:
        return tuple(a for m in self.messages for a in m.attachments)

    def text(self) -> str:
        """All text of the request (system prompt, messages), for estimates and classification."""
        parts = [self.system_prompt] if self.system_prompt else []
        parts.extend(m.text for m in self.messages if m.text)
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class Task:
    """A task from the agent: a blind request plus routing hints."""

    request: BlindRequest
    private: bool = False
    latency_budget_ms: int = 0  # 0 = none
    max_cost_usd: float = 0.0  # 0 = no ceiling
    request_id: str = ""

    @property
    def prompt(self) -> str:
        """The task's own wording: the last user message."""
        for m in reversed(self.request.messages):
            if m.role is Role.USER:
                return m.text
        return ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one attempt, counted as the OpenTelemetry GenAI conventions count them.

    ``input_tokens`` is all input, cache reads and cache writes included
    (``gen_ai.usage.input_tokens``; ``cache_read`` and ``cache_creation`` "SHOULD be included"
    in it); ``output_tokens`` is all output, reasoning/thinking included
    (``gen_ai.usage.output_tokens``; ``reasoning.output_tokens`` "SHOULD be included"). The
    other counts are parts of those two, which is how each provider's own numbers are mapped
    (see the ``_usage`` reader in each module of uniwizard/providers/).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens: read from the provider's cache
    estimated: bool = False  # True when the provider gave no usage and we counted
    cache_write_tokens: int = 0  # of input_tokens: written to the provider's cache
    reasoning_tokens: int = 0  # of output_tokens: reasoning / thinking


@dataclass(frozen=True, slots=True)
class Delta:
    """What a streamed answer adds at one moment: text, or one COMPLETE tool call."""

    text: str = ""
    tool_call: ToolCall | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one exchange with a provider produced no usable answer: the transport's failures
    (connect, timeout, reset, cut) and the provider's own (an error status, an error body or
    stream event, an unparseable answer) alike. ``message`` never holds prompt text."""

    outcome: Outcome
    message: str  # at most a few hundred characters: the provider's words or ours
    http_status: int = 0  # 0 when no status applies (a transport failure, an in-stream error)
    retry_after_s: float = 0.0
    provider_code: str = ""  # e.g. "rate_limit_error", "context_length_exceeded"
    partial_text: str = ""  # what a stream had delivered before it failed


@dataclass(frozen=True, slots=True)
class CallResult:
    """The normalised result of one provider call (one attempt)."""

    backend: str
    model: str
    outcome: Outcome
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = ""  # normalised: stop, length, tool_calls, content_filter, refusal, ...
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    cost_source: str = "estimated"  # "provider" (usage reported) or "estimated"
    latency_ms: float = 0.0
    http_status: int = 0
    retry_after_s: float = 0.0
    error_message: str = ""  # never contains prompt text or secrets
    response_model: str = ""
    scrubbed: int = 0  # identity matches redacted before sending
    ttft_ms: float = 0.0  # streams: time to the first delta (0: unary, or none arrived)
    provider_finish_reason: str = ""  # the provider's own value: end_turn, STOP, tool_calls ...


class HealthState(enum.StrEnum):
    UNKNOWN = "unknown"  # not probed yet: routable
    HEALTHY = "healthy"
    COOLING_DOWN = "cooling_down"  # breaker open
    HALF_OPEN = "half_open"  # one trial allowed
    DOWN = "down"  # auth failure, missing key, unreachable: until a probe or reload succeeds
    DISABLED = "disabled"  # by an operator


ROUTABLE_STATES = frozenset({HealthState.UNKNOWN, HealthState.HEALTHY, HealthState.HALF_OPEN})


class BudgetState(enum.StrEnum):
    NONE = "none"  # no cap configured
    OK = "ok"
    WARNING = "warning"  # at or above the budget's warn_at fraction of a cap
    OVER = "over"  # a cap is reached


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Spending against a budget, as the cost ledger had it at ``as_of``."""

    budget: Budget = field(default_factory=Budget)
    spent_today_usd: float = 0.0
    spent_month_usd: float = 0.0
    state: BudgetState = BudgetState.NONE
    detail: str = ""  # plain words, e.g. "daily $5.00, spent $5.02"
    as_of: float = 0.0


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """The registry's view of one backend at one moment. Times are Unix epoch seconds."""

    key: str
    state: HealthState = HealthState.UNKNOWN
    reason: str = ""  # why it is down / cooling down, in plain words
    cooldown_until: float = 0.0  # epoch seconds; meaningful in COOLING_DOWN
    disabled_by: str = ""
    disabled_reason: str = ""
    last_probe_latency_ms: float = 0.0
    last_probe_ok: bool | None = None
    last_probe_at: float = 0.0
    last_outcome: str = ""  # an Outcome value, from the latest passive report
    failures_in_window: int = 0
    changed_at: float = 0.0
    budget: BudgetStatus = field(default_factory=BudgetStatus)

    @property
    def routable(self) -> bool:
        return self.state in ROUTABLE_STATES


@dataclass(frozen=True, slots=True)
class BackendStats:
    """What has been learned about one backend on one category of task (decayed counts)."""

    category: str
    backend: str
    rated_quality: float = 0.0  # mean rating in [0, 1]
    ratings: float = 0.0
    attempts: float = 0.0
    success_rate: float = 0.0
    outcomes: tuple[tuple[str, float], ...] = ()  # (outcome class, decayed attempts)
    latency_p50_ms: float = 0.0  # answered attempts
    latency_p90_ms: float = 0.0
    ttft_p50_ms: float = 0.0
    cost_per_answer_usd: float = 0.0
    answers: float = 0.0
    updated_at: float = 0.0
