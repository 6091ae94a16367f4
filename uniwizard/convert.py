"""Protobuf <-> typed values for the shared contract types (the services' edges)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from google.protobuf.message import Message as PbMessage

from uniwizard.config_types import BackendConfig
from uniwizard.convert_learning import (
    budget_from_pb,
    budget_status_from_pb,
    budget_status_to_pb,
    budget_to_pb,
)
from uniwizard.types import (
    Attachment,
    BackendHealth,
    BlindRequest,
    CallResult,
    Delta,
    HealthState,
    Message,
    Outcome,
    OutputFormat,
    ResponseFormat,
    Role,
    Task,
    ToolCall,
    ToolDef,
    Usage,
)
from uniwizard.v1 import caller_pb2, common_pb2

E = TypeVar("E", bound=PbMessage)

_OUTCOME_PREFIX = "OUTCOME_CLASS_"
_HEALTH_PREFIX = "HEALTH_STATE_"


def outcome_to_pb(outcome: Outcome | str) -> common_pb2.OutcomeClass.ValueType:
    if not outcome:
        return common_pb2.OUTCOME_CLASS_UNSPECIFIED
    return common_pb2.OutcomeClass.Value(_OUTCOME_PREFIX + Outcome(outcome).name)


def outcome_from_pb(value: common_pb2.OutcomeClass.ValueType | int) -> Outcome | None:
    if value == common_pb2.OUTCOME_CLASS_UNSPECIFIED:
        return None
    name = common_pb2.OutcomeClass.Name(value).removeprefix(_OUTCOME_PREFIX)  # type: ignore[arg-type]
    return Outcome[name]


def health_state_to_pb(state: HealthState) -> common_pb2.HealthState.ValueType:
    return common_pb2.HealthState.Value(_HEALTH_PREFIX + state.name)


def health_state_from_pb(value: common_pb2.HealthState.ValueType | int) -> HealthState:
    if value == common_pb2.HEALTH_STATE_UNSPECIFIED:
        return HealthState.UNKNOWN
    name = common_pb2.HealthState.Name(value)  # type: ignore[arg-type]
    return HealthState[name.removeprefix(_HEALTH_PREFIX)]


_ROLE_TO_PB = {
    Role.USER: common_pb2.ROLE_USER,
    Role.ASSISTANT: common_pb2.ROLE_ASSISTANT,
    Role.TOOL: common_pb2.ROLE_TOOL,
}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()} | {common_pb2.ROLE_UNSPECIFIED: Role.USER}


def tool_call_to_pb(c: ToolCall) -> common_pb2.ToolCall:
    return common_pb2.ToolCall(
        id=c.id, name=c.name, arguments_json=c.arguments_json, provider_state=c.provider_state
    )


def tool_call_from_pb(c: common_pb2.ToolCall) -> ToolCall:
    return ToolCall(
        id=c.id,
        name=c.name,
        arguments_json=c.arguments_json or "{}",
        provider_state=c.provider_state,
    )


def delta_events(delta: Delta, event: Callable[..., E]) -> Iterator[E]:
    """A delta as stream events of type ``event`` (``CallEvent`` or ``DispatchEvent``: both
    carry ``text_delta`` and ``tool_call``)."""
    if delta.text:
        yield event(text_delta=delta.text)
    if delta.tool_call is not None:
        yield event(tool_call=tool_call_to_pb(delta.tool_call))


def request_to_pb(r: BlindRequest) -> common_pb2.BlindRequest:
    pb = common_pb2.BlindRequest(
        system_prompt=r.system_prompt,
        max_output_tokens=r.max_output_tokens,
        tools=[
            common_pb2.ToolDef(
                name=t.name, description=t.description, parameters_json=t.parameters_json
            )
            for t in r.tools
        ],
        messages=[
            common_pb2.Message(
                role=_ROLE_TO_PB[m.role],
                text=m.text,
                attachments=[
                    common_pb2.Attachment(name=a.name, media_type=a.media_type, data=a.data)
                    for a in m.attachments
                ],
                tool_calls=[tool_call_to_pb(c) for c in m.tool_calls],
                tool_call_id=m.tool_call_id,
            )
            for m in r.messages
        ],
    )
    if r.temperature is not None:
        pb.temperature = r.temperature
    if r.response_format is not None and r.response_format.structured:
        f = r.response_format
        pb.response_format.CopyFrom(
            common_pb2.ResponseFormat(
                type=_FORMAT_TO_PB[f.type], name=f.name, schema_json=f.schema_json, strict=f.strict
            )
        )
    return pb


_FORMAT_TO_PB = {
    OutputFormat.TEXT: common_pb2.OUTPUT_FORMAT_UNSPECIFIED,
    OutputFormat.JSON_OBJECT: common_pb2.OUTPUT_FORMAT_JSON_OBJECT,
    OutputFormat.JSON_SCHEMA: common_pb2.OUTPUT_FORMAT_JSON_SCHEMA,
}
_FORMAT_FROM_PB = {v: k for k, v in _FORMAT_TO_PB.items()}


def response_format_from_pb(pb: common_pb2.BlindRequest) -> ResponseFormat | None:
    """The request's structured output, or None for text (unset, or a type this code does not
    know)."""
    if not pb.HasField("response_format"):
        return None
    f = pb.response_format
    kind = _FORMAT_FROM_PB.get(f.type, OutputFormat.TEXT)
    if kind is OutputFormat.TEXT:
        return None
    return ResponseFormat(kind, name=f.name, schema_json=f.schema_json, strict=f.strict)


def request_from_pb(pb: common_pb2.BlindRequest) -> BlindRequest:
    """Only the blind request's own fields are read: nothing else can be forwarded."""
    return BlindRequest(
        system_prompt=pb.system_prompt,
        max_output_tokens=max(0, pb.max_output_tokens),
        temperature=pb.temperature if pb.HasField("temperature") else None,
        response_format=response_format_from_pb(pb),
        tools=tuple(
            ToolDef(
                name=t.name, description=t.description, parameters_json=t.parameters_json or "{}"
            )
            for t in pb.tools
        ),
        messages=tuple(
            Message(
                role=_ROLE_FROM_PB.get(m.role, Role.USER),
                text=m.text,
                attachments=tuple(
                    Attachment(name=a.name, media_type=a.media_type, data=a.data)
                    for a in m.attachments
                ),
                tool_calls=tuple(tool_call_from_pb(c) for c in m.tool_calls),
                tool_call_id=m.tool_call_id,
            )
            for m in pb.messages
        ),
    )


def task_to_pb(t: Task) -> common_pb2.Task:
    return common_pb2.Task(
        request=request_to_pb(t.request),
        private=t.private,
        latency_budget_ms=t.latency_budget_ms,
        max_cost_usd=t.max_cost_usd,
        request_id=t.request_id,
    )


def task_from_pb(pb: common_pb2.Task) -> Task:
    return Task(
        request=request_from_pb(pb.request),
        private=pb.private,
        latency_budget_ms=max(0, pb.latency_budget_ms),
        max_cost_usd=max(0.0, pb.max_cost_usd),
        request_id=pb.request_id,
    )


def usage_to_pb(u: Usage) -> common_pb2.Usage:
    return common_pb2.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cached_input_tokens=u.cached_input_tokens,
        estimated=u.estimated,
        cache_write_tokens=u.cache_write_tokens,
        reasoning_tokens=u.reasoning_tokens,
    )


def usage_from_pb(pb: common_pb2.Usage) -> Usage:
    return Usage(
        input_tokens=pb.input_tokens,
        output_tokens=pb.output_tokens,
        cached_input_tokens=pb.cached_input_tokens,
        estimated=pb.estimated,
        cache_write_tokens=pb.cache_write_tokens,
        reasoning_tokens=pb.reasoning_tokens,
    )


def call_result_to_pb(r: CallResult) -> caller_pb2.CallResult:
    return caller_pb2.CallResult(
        backend=r.backend,
        model=r.model,
        outcome=outcome_to_pb(r.outcome),
        text=r.text,
        tool_calls=[tool_call_to_pb(c) for c in r.tool_calls],
        finish_reason=r.finish_reason,
        usage=usage_to_pb(r.usage),
        cost_usd=r.cost_usd,
        cost_source=r.cost_source,
        latency_ms=r.latency_ms,
        http_status=r.http_status,
        retry_after_s=r.retry_after_s,
        error_message=r.error_message,
        response_model=r.response_model,
        identity_redactions=r.scrubbed,
        ttft_ms=r.ttft_ms,
        provider_finish_reason=r.provider_finish_reason,
    )


def call_result_from_pb(pb: caller_pb2.CallResult) -> CallResult:
    return CallResult(
        backend=pb.backend,
        model=pb.model,
        outcome=outcome_from_pb(pb.outcome) or Outcome.MALFORMED,
        text=pb.text,
        tool_calls=tuple(tool_call_from_pb(c) for c in pb.tool_calls),
        finish_reason=pb.finish_reason,
        usage=usage_from_pb(pb.usage),
        cost_usd=pb.cost_usd,
        cost_source=pb.cost_source,
        latency_ms=pb.latency_ms,
        http_status=pb.http_status,
        retry_after_s=pb.retry_after_s,
        error_message=pb.error_message,
        response_model=pb.response_model,
        scrubbed=pb.identity_redactions,
        ttft_ms=pb.ttft_ms,
        provider_finish_reason=pb.provider_finish_reason,
    )


def attempt_to_pb(r: CallResult) -> common_pb2.Attempt:
    return common_pb2.Attempt(
        backend=r.backend,
        model=r.model,
        outcome=outcome_to_pb(r.outcome),
        latency_ms=r.latency_ms,
        usage=usage_to_pb(r.usage),
        cost_usd=r.cost_usd,
        cost_source=r.cost_source,
        http_status=r.http_status,
        retry_after_s=r.retry_after_s,
        error_message=r.error_message,
    )


def backend_to_pb(b: BackendConfig) -> common_pb2.Backend:
    pb = common_pb2.Backend(
        key=b.key,
        provider=b.provider,
        url=b.url,
        model=b.model,
        api_key_env=b.api_key_env or "",
        cost_per_1k_input=b.cost_per_1k_input,
        cost_per_1k_output=b.cost_per_1k_output,
        strengths=list(b.strengths),
        weaknesses=list(b.weaknesses),
        max_context=b.max_context,
        max_output_tokens=b.max_output_tokens,
        timeout_s=b.timeout,
        modalities=list(b.modalities),
        tools=b.tools,
        private=b.private,
        allowed_fails=b.allowed_fails,
        cooldown_time_s=b.cooldown_time,
        failure_window_s=b.failure_window,
        connect_timeout_s=b.connect_timeout,
        first_token_timeout_s=b.first_token_timeout,
        stream_idle_timeout_s=b.stream_idle_timeout,
        budget=budget_to_pb(b.budget),
    )
    if b.output_formats is not None:
        pb.output_formats.formats.extend(b.output_formats)
    if b.cost_per_1k_cached_input is not None:
        pb.cost_per_1k_cached_input = b.cost_per_1k_cached_input
    if b.cost_per_1k_cache_write is not None:
        pb.cost_per_1k_cache_write = b.cost_per_1k_cache_write
    return pb


def backend_from_pb(pb: common_pb2.Backend) -> BackendConfig:
    return BackendConfig(
        key=pb.key,
        provider=pb.provider,
        url=pb.url,
        model=pb.model,
        api_key_env=pb.api_key_env or None,
        cost_per_1k_input=pb.cost_per_1k_input,
        cost_per_1k_output=pb.cost_per_1k_output,
        cost_per_1k_cached_input=(
            pb.cost_per_1k_cached_input if pb.HasField("cost_per_1k_cached_input") else None
        ),
        cost_per_1k_cache_write=(
            pb.cost_per_1k_cache_write if pb.HasField("cost_per_1k_cache_write") else None
        ),
        strengths=tuple(pb.strengths),
        weaknesses=tuple(pb.weaknesses),
        max_context=pb.max_context,
        max_output_tokens=pb.max_output_tokens,
        timeout=pb.timeout_s,
        modalities=tuple(pb.modalities),
        tools=pb.tools,
        private=pb.private,
        allowed_fails=pb.allowed_fails,
        cooldown_time=pb.cooldown_time_s,
        failure_window=pb.failure_window_s,
        connect_timeout=pb.connect_timeout_s,
        first_token_timeout=pb.first_token_timeout_s,
        stream_idle_timeout=pb.stream_idle_timeout_s,
        budget=budget_from_pb(pb.budget),
        output_formats=(
            tuple(pb.output_formats.formats) if pb.HasField("output_formats") else None
        ),
    )


def health_to_pb(h: BackendHealth) -> common_pb2.BackendHealth:
    pb = common_pb2.BackendHealth(
        key=h.key,
        state=health_state_to_pb(h.state),
        reason=h.reason,
        cooldown_until=h.cooldown_until,
        disabled_by=h.disabled_by,
        disabled_reason=h.disabled_reason,
        last_probe_latency_ms=h.last_probe_latency_ms,
        last_probe_at=h.last_probe_at,
        last_outcome=outcome_to_pb(h.last_outcome),
        failures_in_window=h.failures_in_window,
        changed_at=h.changed_at,
        budget=budget_status_to_pb(h.budget),
    )
    if h.last_probe_ok is not None:
        pb.last_probe_ok = h.last_probe_ok
    return pb


def health_from_pb(pb: common_pb2.BackendHealth) -> BackendHealth:
    last = outcome_from_pb(pb.last_outcome)
    return BackendHealth(
        key=pb.key,
        state=health_state_from_pb(pb.state),
        reason=pb.reason,
        cooldown_until=pb.cooldown_until,
        disabled_by=pb.disabled_by,
        disabled_reason=pb.disabled_reason,
        last_probe_latency_ms=pb.last_probe_latency_ms,
        last_probe_ok=pb.last_probe_ok if pb.HasField("last_probe_ok") else None,
        last_probe_at=pb.last_probe_at,
        last_outcome=last.value if last else "",
        failures_in_window=pb.failures_in_window,
        changed_at=pb.changed_at,
        budget=budget_status_from_pb(pb.budget),
    )
