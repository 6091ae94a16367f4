"""Typed results of the services' RPCs (protobuf stays inside the client)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from uniwizard.convert import health_state_from_pb, outcome_from_pb
from uniwizard.types import ROUTABLE_STATES, HealthState, ToolCall
from uniwizard.v1 import caller_pb2, common_pb2, registry_pb2, router_pb2
from uniwizard_client.learning import BudgetInfo, budget_info

# -- router ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str  # the category or constraint that fired
    evidence: str  # what it fired on, in plain words


@dataclass(frozen=True, slots=True)
class Skipped:
    backend: str
    reason: str  # disabled, down, cooling_down, context_too_small, modality, not_private, ...
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """Which backend would take a task, and why."""

    backend: str | None  # None when no backend is eligible
    category: str
    chain: tuple[str, ...]
    reasons: tuple[Reason, ...]
    skipped: tuple[Skipped, ...]
    estimated_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    backend: str
    outcome: str  # an outcome class: success, rate_limited, refusal, ...
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    model: str = ""
    error: str = ""  # never prompt text or secrets
    cost_source: str = ""  # "provider" or "estimated"
    # Parts of input_tokens (read from / written to the provider's cache) and of output_tokens
    # (reasoning / thinking), as the provider reported them.
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    retry_after_s: float = 0.0  # what the provider asked for (a rate limit's Retry-After)


@dataclass(frozen=True, slots=True)
class ThinkResult:
    """An answered task: the text, who answered, and every attempt it took."""

    text: str
    backend: str
    model: str
    category: str
    attempts: tuple[AttemptInfo, ...]
    cost_usd: float  # all attempts together
    trace_id: str
    request_id: str = ""
    finish_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    # What the answer asked to call, in order. Send them back unchanged (provider_state
    # included) in the assistant message of the next turn.
    tool_calls: tuple[ToolCall, ...] = ()
    provider_finish_reason: str = ""  # the provider's own word: end_turn, STOP, tool_calls, ...


# -- stream events (``dispatch_stream``) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Routed:
    """First: the routing decision the dispatch follows."""

    decision: RouteInfo


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCalled:
    """A complete tool call of the answer (id, name and the arguments as JSON text)."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class Answering:
    """Just before the first text or tool call: the backend (and its configured model) whose
    answer follows. No other backend is tried after it."""

    backend: str
    model: str = ""


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """A backend failed before any of its text went out; the router tries the next one."""

    attempt: AttemptInfo


# Last comes the ThinkResult: the whole text and every tool call again, the backend, the
# attempts, the cost and the trace id.
StreamEvent = Routed | Answering | TextDelta | ToolCalled | AttemptFailed | ThinkResult


def route_info(d: router_pb2.RouteDecision) -> RouteInfo:
    return RouteInfo(
        backend=d.backend or None,
        category=d.category,
        chain=tuple(d.chain),
        reasons=tuple(Reason(r.rule, r.evidence) for r in d.reasons),
        skipped=tuple(Skipped(s.backend, s.reason, s.detail) for s in d.skipped),
        estimated_input_tokens=d.estimated_input_tokens,
    )


def attempt_info(a: common_pb2.Attempt) -> AttemptInfo:
    outcome = outcome_from_pb(a.outcome)
    return AttemptInfo(
        backend=a.backend,
        outcome=outcome.value if outcome else "unknown",
        latency_ms=a.latency_ms,
        input_tokens=a.usage.input_tokens,
        output_tokens=a.usage.output_tokens,
        cost_usd=a.cost_usd,
        model=a.model,
        error=a.error_message,
        cost_source=a.cost_source,
        cached_input_tokens=a.usage.cached_input_tokens,
        cache_write_tokens=a.usage.cache_write_tokens,
        reasoning_tokens=a.usage.reasoning_tokens,
        retry_after_s=a.retry_after_s,
    )


def tool_call(c: common_pb2.ToolCall) -> ToolCall:
    """A tool call of the answer, with the provider state to send back on the next turn."""
    return ToolCall(
        id=c.id, name=c.name, arguments_json=c.arguments_json, provider_state=c.provider_state
    )


def think_result(r: router_pb2.DispatchResult) -> ThinkResult:
    return ThinkResult(
        text=r.text,
        backend=r.backend,
        model=r.model,
        category=r.decision.category,
        attempts=tuple(attempt_info(a) for a in r.attempts),
        cost_usd=r.cost_usd,
        trace_id=r.trace_id,
        request_id=r.request_id,
        finish_reason=r.finish_reason,
        input_tokens=r.usage.input_tokens,
        output_tokens=r.usage.output_tokens,
        tool_calls=tuple(tool_call(c) for c in r.tool_calls),
        provider_finish_reason=r.provider_finish_reason,
    )


class StreamAssembler:
    """Typed events from ``DispatchEvent``s; the final result gets the streamed text and tool
    calls (the router's ``done`` carries everything but those)."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: list[ToolCall] = []

    def event(self, ev: router_pb2.DispatchEvent) -> StreamEvent | None:
        which = ev.WhichOneof("event")
        if which == "decision":
            return Routed(route_info(ev.decision))
        if which == "text_delta":
            self._text.append(ev.text_delta)
            return TextDelta(ev.text_delta)
        if which == "tool_call":
            call = tool_call(ev.tool_call)
            self._calls.append(call)
            return ToolCalled(call)
        if which == "attempt_failed":
            return AttemptFailed(attempt_info(ev.attempt_failed))
        if which == "answering":
            return Answering(ev.answering.backend, ev.answering.model)
        if which == "done":
            result = think_result(ev.done)
            return dataclasses.replace(
                result,
                text="".join(self._text) if self._text else result.text,
                tool_calls=tuple(self._calls) if self._calls else result.tool_calls,
            )
        return None  # an event this client does not know yet


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    """A routing category of the router's policy (``configs/routing.yaml``)."""

    name: str
    description: str = ""
    prefer: tuple[str, ...] = ()  # the preference list before filtering
    private_only: bool = False


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the router can route to: its categories (policy order) and backends (configuration
    order) with their health as the router's snapshot has it."""

    categories: tuple[CategoryInfo, ...]
    default_category: str
    backends: tuple[BackendState, ...]

    def category(self, name: str) -> CategoryInfo | None:
        return next((c for c in self.categories if c.name == name), None)

    def backend(self, key: str) -> BackendState | None:
        return next((b for b in self.backends if b.key == key), None)


def catalog(r: router_pb2.CatalogResponse) -> Catalog:
    return Catalog(
        categories=tuple(
            CategoryInfo(c.name, c.description, tuple(c.prefer), c.private_only)
            for c in r.categories
        ),
        default_category=r.default_category,
        backends=tuple(backend_state(s) for s in r.backends),
    )


# -- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendState:
    """One backend's configuration summary and live health, as the registry reports it."""

    key: str
    state: str  # unknown, healthy, cooling_down, half_open, down, disabled
    reason: str = ""
    provider: str = ""
    model: str = ""
    disabled_by: str = ""
    disabled_reason: str = ""
    cooldown_until: float = 0.0  # epoch seconds
    last_outcome: str = ""  # an outcome class, "" before the first call
    failures_in_window: int = 0
    changed_at: float = 0.0
    url: str = ""
    private: bool = False
    max_context: int = 0
    cost_per_1k_input: float = 0.0
    cost_per_1k_output: float = 0.0
    last_probe_ok: bool | None = None  # None: never probed
    last_probe_latency_ms: float = 0.0
    last_probe_at: float = 0.0  # epoch seconds
    budget: BudgetInfo = field(default_factory=BudgetInfo)  # state "none": no cap

    @property
    def routable(self) -> bool:
        return HealthState(self.state) in ROUTABLE_STATES


@dataclass(frozen=True, slots=True)
class BackendList:
    """Every configured backend, in configuration order, and the file they come from."""

    config_path: str
    backends: tuple[BackendState, ...]
    overall_budget: BudgetInfo = field(default_factory=BudgetInfo)  # across every backend


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """A registry reload: applied (``ok``) or rejected with ``error``, the old config kept."""

    ok: bool
    error: str = ""
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def backend_state(s: common_pb2.BackendStatus) -> BackendState:
    h, b = s.health, s.backend
    last = outcome_from_pb(h.last_outcome)
    return BackendState(
        key=b.key or h.key,
        state=health_state_from_pb(h.state).value,
        reason=h.reason,
        provider=b.provider,
        model=b.model,
        disabled_by=h.disabled_by,
        disabled_reason=h.disabled_reason,
        cooldown_until=h.cooldown_until,
        last_outcome=last.value if last else "",
        failures_in_window=h.failures_in_window,
        changed_at=h.changed_at,
        url=b.url,
        private=b.private,
        max_context=b.max_context,
        cost_per_1k_input=b.cost_per_1k_input,
        cost_per_1k_output=b.cost_per_1k_output,
        last_probe_ok=h.last_probe_ok if h.HasField("last_probe_ok") else None,
        last_probe_latency_ms=h.last_probe_latency_ms,
        last_probe_at=h.last_probe_at,
        budget=budget_info(h.budget),
    )


def backend_list(r: registry_pb2.ListBackendsResponse) -> BackendList:
    return BackendList(
        config_path=r.config_path,
        backends=tuple(backend_state(s) for s in r.backends),
        overall_budget=budget_info(r.overall_budget),
    )


def reload_result(r: registry_pb2.ReloadResponse) -> ReloadResult:
    return ReloadResult(
        ok=r.ok,
        error=r.error,
        added=tuple(r.added),
        changed=tuple(r.changed),
        removed=tuple(r.removed),
    )


# -- caller ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendUsage:
    """The cost ledger's totals for one backend (or for all: ``backend`` is then "total"), or
    for one client (``client`` names it, ``backend`` is empty)."""

    backend: str
    attempts: int
    successes: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated_rows: int = 0  # attempts whose tokens or cost we estimated
    cached_input_tokens: int = 0  # of input_tokens: read from the providers' caches
    cache_write_tokens: int = 0  # of input_tokens: written to the providers' caches
    reasoning_tokens: int = 0  # of output_tokens: reasoning / thinking
    client: str = ""  # the client's name (its token's), in UsageReport.clients


@dataclass(frozen=True, slots=True)
class UsageReport:
    """The ledger between ``since`` and ``until`` (epoch seconds; until 0 = now): per backend,
    per client when asked, and in total. A token without admin sees only its own attempts."""

    backends: tuple[BackendUsage, ...]
    total: BackendUsage
    since: float = 0.0
    until: float = 0.0
    clients: tuple[BackendUsage, ...] = ()


def backend_usage(u: caller_pb2.BackendUsage) -> BackendUsage:
    return BackendUsage(
        backend=u.backend,
        attempts=u.attempts,
        successes=u.successes,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cost_usd=u.cost_usd,
        estimated_rows=u.estimated_rows,
        cached_input_tokens=u.cached_input_tokens,
        cache_write_tokens=u.cache_write_tokens,
        reasoning_tokens=u.reasoning_tokens,
        client=u.client,
    )


def usage_report(r: caller_pb2.UsageResponse) -> UsageReport:
    return UsageReport(
        backends=tuple(backend_usage(u) for u in r.backends),
        total=backend_usage(r.total),
        since=r.since,
        until=r.until,
        clients=tuple(backend_usage(u) for u in r.clients),
    )
