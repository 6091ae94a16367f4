"""call_with_fallback: walk the chain, calling caller_svc, following the outcome table.

Protobuf appears only where this module talks to the caller and the registry; results are typed
values. The whole dispatch is bounded by one deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

import grpc
from opentelemetry.trace import Span, Status, StatusCode

from router_svc.chain import Decision, Skip, build_chain, fits_context
from router_svc.classify import Reason, classify
from router_svc.fallback import Action, FallbackPolicy, next_step
from router_svc.health_view import HealthView
from router_svc.policy import Policy
from router_svc.tokens import estimate_task_tokens
from uniwizard import telemetry
from uniwizard.convert import call_result_from_pb, request_to_pb, tool_call_from_pb
from uniwizard.types import CallResult, HealthState, Outcome, Task, ToolCall
from uniwizard.v1 import caller_pb2, caller_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc

DEFAULT_DEADLINE_S = 120.0


@dataclass
class DispatchReport:
    decision: Decision
    request_id: str
    trace_id: str
    attempts: list[CallResult] = field(default_factory=list)
    answer: CallResult | None = None  # the attempt that answered
    failure: Outcome | None = None
    message: str = ""
    request_pb: common_pb2.BlindRequest | None = None  # the blind request as sent to the caller

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)


@dataclass(frozen=True, slots=True)
class Delta:
    text: str = ""
    tool_call: ToolCall | None = None


class DispatchFailed(Exception):
    def __init__(self, report: DispatchReport):
        super().__init__(report.message)
        self.report = report


class RouterCore:
    def __init__(
        self,
        policy: Policy,
        view: HealthView,
        caller: caller_pb2_grpc.CallerAsyncStub,
        registry: registry_pb2_grpc.RegistryAsyncStub | None = None,
        fallback: FallbackPolicy | None = None,
    ):
        self.policy = policy
        self.view = view
        self.caller = caller
        self.registry = registry
        self.fallback = fallback or FallbackPolicy()
        self.tracer = telemetry.tracer("router_svc")

    # -- Route -------------------------------------------------------------------------------

    def decide(self, task: Task, pin: str = "") -> Decision:
        estimate = estimate_task_tokens(task)
        cls = classify(task, self.policy, estimate)
        decision = build_chain(
            task,
            cls,
            self.policy,
            self.view.backends,
            self.view.health,
            estimate=estimate,
            now=time.time(),
        )
        if not pin:
            return decision
        return self._pinned(task, decision, pin)

    def _pinned(self, task: Task, decision: Decision, pin: str) -> Decision:
        """The seed's call(backend_key, ...): straight to one backend, no fallback."""
        reasons = (Reason("pinned", f"backend {pin} requested by the caller"),)
        skipped: list[Skip] = []
        b = self.view.backends.get(pin)
        h = self.view.health.get(pin)
        if b is None:
            skipped.append(Skip(pin, "not_configured", "no such backend"))
        elif task.private and not b.private:
            skipped.append(Skip(pin, "not_private", "the task is private; this backend is not"))
        elif h is not None and not h.routable:
            skipped.append(Skip(pin, h.state.value, h.reason or h.state.value))
        chain = () if skipped else (pin,)
        return replace(
            decision,
            backend=chain[0] if chain else None,
            chain=chain,
            reasons=reasons + tuple(decision.reasons),
            skipped=tuple(skipped),
        )

    def route(self, task: Task) -> Decision:
        with self.tracer.start_as_current_span("route") as span:
            decision = self.decide(task)
            _decision_attributes(span, decision)
            return decision

    # -- Dispatch ----------------------------------------------------------------------------

    def _start(self, task: Task, pin: str, trace_id: str) -> tuple[Task, DispatchReport]:
        if not task.request_id:
            task = replace(task, request_id=uuid.uuid4().hex)
        decision = self.decide(task, pin)
        trace_id = telemetry.current_trace_id() or trace_id or uuid.uuid4().hex
        return task, DispatchReport(decision, task.request_id, trace_id)

    async def dispatch(
        self,
        task: Task,
        *,
        pin: str = "",
        deadline_s: float | None = None,
        trace_id: str = "",
        request_pb: common_pb2.BlindRequest | None = None,
    ) -> DispatchReport:
        """Run call_with_fallback; raises DispatchFailed with the report when nothing answered."""
        report = None
        # Run the walk to its end (never break out of it): its spans must close where they opened.
        async for item in self._walk(task, pin, deadline_s, trace_id, request_pb, stream=False):
            if isinstance(item, DispatchReport):
                report = item
        assert report is not None, "_walk ends with a report or raises"
        return report

    async def dispatch_stream(
        self,
        task: Task,
        *,
        pin: str = "",
        deadline_s: float | None = None,
        trace_id: str = "",
        request_pb: common_pb2.BlindRequest | None = None,
    ) -> AsyncGenerator[Decision | Delta | CallResult | DispatchReport, None]:
        """Decision first; then deltas and failed attempts (CallResult); the report last.

        ``request_pb``, when given, is the task's blind request as it arrived: it is forwarded
        to the caller as is instead of being converted back from ``task``."""
        walk = self._walk(task, pin, deadline_s, trace_id, request_pb, stream=True)
        async with aclosing(walk) as items:
            async for item in items:
                yield item

    async def _walk(
        self,
        task: Task,
        pin: str,
        deadline_s: float | None,
        trace_id: str,
        request_pb: common_pb2.BlindRequest | None,
        *,
        stream: bool,
    ) -> AsyncGenerator[Decision | Delta | CallResult | DispatchReport, None]:
        deadline = time.monotonic() + (deadline_s if deadline_s else DEFAULT_DEADLINE_S)
        with self.tracer.start_as_current_span("dispatch") as span:
            task, report = self._start(task, pin, trace_id)
            report.request_pb = request_pb
            _decision_attributes(span, report.decision)
            span.set_attribute("uniwizard.request_id", report.request_id)
            yield report.decision
            chain = list(report.decision.chain)
            committed = False  # something was forwarded to the client
            i = 0
            while i < len(chain):
                key = chain[i]
                i += 1
                b = self.view.backends.get(key)
                if b is None or (task.private and not b.private):
                    continue  # defence in depth: the chain was already filtered
                trial = self._is_half_open(key)
                if trial and not await self._acquire_trial(key):
                    report.decision = replace(
                        report.decision,
                        skipped=(
                            *report.decision.skipped,
                            Skip(key, "half_open", "a half-open trial is already in flight"),
                        ),
                    )
                    continue
                tries = 0
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.05:
                        report.failure, report.message = Outcome.TIMEOUT, "deadline exceeded"
                        raise DispatchFailed(_finish_span(span, report))
                    tries += 1
                    result: CallResult | None = None
                    with self.tracer.start_as_current_span(f"attempt {key}") as aspan:
                        aspan.set_attribute("uniwizard.backend", key)
                        aspan.set_attribute("uniwizard.attempt", len(report.attempts) + 1)
                        if stream:
                            once = self._stream_once(task, report, key, remaining)
                            async with aclosing(once) as events:
                                async for ev in events:
                                    if isinstance(ev, Delta):
                                        committed = True
                                        yield ev
                                    else:
                                        result = ev
                        else:
                            result = await self._call_once(task, report, key, remaining)
                        assert result is not None
                        report.attempts.append(result)
                        _attempt_attributes(aspan, result)
                    if result.outcome is Outcome.SUCCESS:
                        report.answer = result
                        _finish_span(span, report)
                        yield report
                        return
                    if committed:
                        report.failure = result.outcome
                        report.message = (
                            f"{key} failed after part of the answer was sent "
                            f"({result.outcome.value}: {result.error_message})"
                        )
                        raise DispatchFailed(_finish_span(span, report))
                    if stream:
                        yield result
                    # A half-open trial is exactly one request: no retry on the same backend.
                    used = self.fallback.max_tries_per_backend if trial else tries
                    step = next_step(result, used, deadline - time.monotonic(), self.fallback)
                    if step.action is Action.RETRY:
                        await asyncio.sleep(step.delay_s)
                        continue
                    if step.action is Action.STOP:
                        report.failure = result.outcome
                        report.message = f"{key}: {result.outcome.value}: {result.error_message}"
                        raise DispatchFailed(_finish_span(span, report))
                    if step.action is Action.NEXT_LARGER:
                        need = report.decision.estimated_input_tokens
                        chain[i:] = [
                            k
                            for k in chain[i:]
                            if k in self.view.backends
                            and self.view.backends[k].max_context > b.max_context
                            and fits_context(self.view.backends[k], need, 0)
                        ]
                    break
            report.failure, report.message = self._exhausted(report)
            raise DispatchFailed(_finish_span(span, report))

    def _exhausted(self, report: DispatchReport) -> tuple[Outcome, str]:
        if not report.attempts:
            why = "; ".join(f"{s.backend}: {s.detail or s.reason}" for s in report.decision.skipped)
            cat = report.decision.category
            return Outcome.NO_BACKEND, f"no eligible backend for this {cat} task" + (
                f" ({why})" if why else ""
            )
        tried = ", ".join(f"{a.backend}: {a.outcome.value}" for a in report.attempts)
        return report.attempts[-1].outcome, f"every backend failed ({tried})"

    def _is_half_open(self, key: str) -> bool:
        h = self.view.health.get(key)
        return h is not None and h.state is HealthState.HALF_OPEN

    async def _acquire_trial(self, key: str) -> bool:
        if self.registry is None:
            return True
        try:
            resp = await self.registry.AcquireTrial(
                registry_pb2.AcquireTrialRequest(key=key), timeout=1.0
            )
            return bool(resp.granted)
        except grpc.aio.AioRpcError:
            return True  # registry down: the last snapshot said half-open; let one through

    def _call_request(self, task: Task, report: DispatchReport, key: str) -> caller_pb2.CallRequest:
        if report.request_pb is None:
            report.request_pb = request_to_pb(task.request)
        return caller_pb2.CallRequest(
            backend=key,
            request=report.request_pb,  # only the blind request's fields travel
            request_id=report.request_id,
            category=report.decision.category,
            attempt=len(report.attempts) + 1,
        )

    async def _call_once(
        self, task: Task, report: DispatchReport, key: str, remaining: float
    ) -> CallResult:
        started = time.perf_counter()
        try:
            pb = await self.caller.Call(
                self._call_request(task, report, key),
                timeout=remaining,
                metadata=telemetry.traceparent_metadata(report.trace_id),
                wait_for_ready=True,  # a restarting caller delays the attempt, within the deadline
            )
        except grpc.aio.AioRpcError as exc:
            return _caller_error(key, exc, started)
        return call_result_from_pb(pb)

    async def _stream_once(
        self, task: Task, report: DispatchReport, key: str, remaining: float
    ) -> AsyncGenerator[Delta | CallResult, None]:
        started = time.perf_counter()
        call = self.caller.CallStream(
            self._call_request(task, report, key),
            timeout=remaining,
            metadata=telemetry.traceparent_metadata(report.trace_id),
            wait_for_ready=True,  # a restarting caller delays the attempt, within the deadline
        )
        result: CallResult | None = None
        try:
            async for ev in call:  # read to the end: the caller closes right after its result
                which = ev.WhichOneof("event")
                if which == "text_delta":
                    yield Delta(text=ev.text_delta)
                elif which == "tool_call":
                    yield Delta(tool_call=tool_call_from_pb(ev.tool_call))
                elif which == "result":
                    result = call_result_from_pb(ev.result)
        except grpc.aio.AioRpcError as exc:
            result = _caller_error(key, exc, started)
        finally:
            call.cancel()  # a no-op once the stream has ended
        yield result or CallResult(
            backend=key,
            model="",
            outcome=Outcome.TRUNCATED,
            error_message="caller stream ended without a result",
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def _caller_error(key: str, exc: grpc.aio.AioRpcError, started: float) -> CallResult:
    code = exc.code()
    outcome = {
        grpc.StatusCode.DEADLINE_EXCEEDED: Outcome.TIMEOUT,
        grpc.StatusCode.CANCELLED: Outcome.CANCELLED,
        grpc.StatusCode.INVALID_ARGUMENT: Outcome.BAD_REQUEST,
        grpc.StatusCode.NOT_FOUND: Outcome.BAD_REQUEST,
    }.get(code, Outcome.NETWORK)
    return CallResult(
        backend=key,
        model="",
        outcome=outcome,
        latency_ms=(time.perf_counter() - started) * 1000,
        error_message=f"caller_svc: {code.name}: {exc.details() or ''}"[:300],
    )


def _decision_attributes(span: Span, d: Decision) -> None:
    span.set_attribute("uniwizard.route.category", d.category)
    span.set_attribute("uniwizard.route.backend", d.backend or "")
    span.set_attribute("uniwizard.route.chain", list(d.chain))
    span.set_attribute("uniwizard.route.reasons", [f"{r.rule}: {r.evidence}" for r in d.reasons])
    span.set_attribute("uniwizard.route.skipped", [f"{s.backend}: {s.reason}" for s in d.skipped])
    span.set_attribute("uniwizard.route.estimated_input_tokens", d.estimated_input_tokens)


def _attempt_attributes(span: Span, r: CallResult) -> None:
    span.set_attribute("uniwizard.outcome", r.outcome.value)
    span.set_attribute("gen_ai.usage.input_tokens", r.usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", r.usage.output_tokens)
    span.set_attribute("gen_ai.usage.cost.amount", r.cost_usd)
    span.set_attribute("gen_ai.usage.cost.currency", "USD")
    span.set_attribute("gen_ai.usage.cost.source", r.cost_source)
    if r.outcome is not Outcome.SUCCESS:
        span.set_attribute("error.type", r.outcome.value)
        span.set_status(Status(StatusCode.ERROR, r.outcome.value))


def _finish_span(span: Span, report: DispatchReport) -> DispatchReport:
    span.set_attribute("uniwizard.attempts", len(report.attempts))
    span.set_attribute("gen_ai.usage.cost.amount", report.cost_usd)
    span.set_attribute("gen_ai.usage.cost.currency", "USD")
    if report.answer is not None:
        span.set_attribute("uniwizard.answered_by", report.answer.backend)
    if report.failure is not None:
        span.set_attribute("error.type", report.failure.value)
        span.set_status(Status(StatusCode.ERROR, report.failure.value))
    return report
