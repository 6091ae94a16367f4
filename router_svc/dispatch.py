"""call_with_fallback: walk the chain, calling caller_svc, following the outcome table.

The walk, step by step (``RouterCore._walk``): decide the chain; for each backend the
:class:`~router_svc.fallback.ChainWalk` hands out, admit it (``_admit``: a half-open breaker lets
exactly one trial through), try it (``_try_backend``: attempts with the retries the outcome
table allows, each one ``_attempt`` through the caller link in its own span), then answer, stop,
or move on to the next backend the outcome points at. The whole dispatch is bounded by one
deadline. Results are typed values; protobuf appears only in the request handed to the caller
link.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from opentelemetry.trace import Span, Status, StatusCode

from router_svc.adapt import rank
from router_svc.budget import BudgetCheck, SpendTracker
from router_svc.chain import ChainWalk, Decision, Skip, build_chain, upper_cost
from router_svc.classify import Reason, classify, requested
from router_svc.client_budget import ClientSpend, Reached
from router_svc.fallback import Action, FallbackPolicy, Step, next_step
from router_svc.health_view import HealthView
from router_svc.links import CallerLink, RegistryLink
from router_svc.policy import Policy
from uniwizard import telemetry
from uniwizard.config_types import Budget
from uniwizard.convert import request_to_pb
from uniwizard.providers.pricing import price
from uniwizard.providers.tokens import estimate_task_tokens
from uniwizard.time_windows import month_start
from uniwizard.types import CallResult, Delta, HealthState, Outcome, Task, Usage
from uniwizard.v1 import caller_pb2, common_pb2

DEFAULT_DEADLINE_S = 120.0
TYPICAL_OUTPUT_TOKENS = 300  # what a task is expected to cost, for exploring unpriced backends
RATE_TIMEOUT_S = 10.0


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
    client: str = ""
    budget: Budget | None = None

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)


@dataclass(frozen=True, slots=True)
class DispatchJob:
    """One Dispatch as the router core takes it."""

    task: Task
    pin: str = ""  # a backend key: straight to it, no fallback
    category: str = ""  # a category of the policy: its chain, with fallback, no classifying
    deadline_s: float | None = None  # None: DEFAULT_DEADLINE_S
    trace_id: str = ""  # from the client's traceparent (used when tracing is off here)
    # The task's blind request as it arrived: forwarded to the caller as is, not re-encoded.
    request_pb: common_pb2.BlindRequest | None = None
    client: str = ""  # the name of the token it is for (the ledger's and the spans' client)
    budget: Budget | None = None  # that token's budget, if it has one


@dataclass(frozen=True, slots=True)
class Answering:
    """Streams: the backend whose answer the deltas that follow are, yielded once just before
    the first of them (nothing went out before it, and no other backend is tried after it)."""

    backend: str
    model: str


StreamItem = Decision | Answering | Delta | CallResult | DispatchReport


class DispatchFailed(Exception):
    def __init__(self, report: DispatchReport):
        super().__init__(report.message)
        self.report = report


@dataclass
class _Run:
    """One dispatch in progress: what the walk knows between its steps."""

    task: Task
    report: DispatchReport
    deadline: float  # time.monotonic()
    stream: bool
    committed: bool = False  # part of an answer went out to the client: no fallback now
    step: Step | None = None  # what the last backend's outcome said to do next

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def fail(self, outcome: Outcome, message: str) -> None:
        self.report.failure, self.report.message = outcome, message


class RouterCore:
    def __init__(
        self,
        policy: Policy,
        view: HealthView,
        caller: CallerLink,
        registry: RegistryLink | None = None,
        fallback: FallbackPolicy | None = None,
        rng: random.Random | None = None,
    ):
        self.policy = policy
        self.view = view
        self.caller = caller
        self.registry = registry
        self.fallback = fallback or FallbackPolicy()
        self.tracer = telemetry.tracer("router_svc")
        self.tracker = SpendTracker()  # this router's spending and attempts in flight
        # ... and per client whose token has a budget (read from the ledger through the caller)
        self.clients = ClientSpend(lambda day, month: caller.client_spend(day, month))
        self.rng = rng or random.Random()  # exploration draws (seed it to replay decisions)

    # -- Route -------------------------------------------------------------------------------

    def decide(self, task: Task, pin: str = "", category: str = "") -> Decision:
        """v1's decision (classification, the filtered chain), then v2's reordering of it by
        what was learned, when the category's ``adapt`` is on. ``category`` (a name the policy
        has) replaces the classification; ``pin`` replaces the chain."""
        now = time.time()
        estimate = estimate_task_tokens(task)
        if category:
            cls = requested(category, self.policy)
        else:
            cls = classify(task, self.policy, estimate)
        budget = self._budget_check(now)
        decision = build_chain(
            task,
            cls,
            self.policy,
            self.view.backends,
            self.view.health,
            estimate=estimate,
            now=now,
            budget=budget,
        )
        if pin:
            return self._pinned(task, decision, pin, budget)
        adapt = self.policy.rule(decision.category).adapt
        if not adapt.enabled:
            return decision
        prices = {
            k: price(self.view.backends[k], Usage(estimate, TYPICAL_OUTPUT_TOKENS))
            for k in decision.chain
            if k in self.view.backends
        }
        ranked = rank(decision.category, decision.chain, self.view.stats, adapt, self.rng, prices)
        if ranked.chain == decision.chain and not ranked.reasons:
            return decision
        return replace(
            decision,
            backend=ranked.chain[0],
            chain=ranked.chain,
            reasons=(*decision.reasons, *ranked.reasons),
        )

    def _budget_check(self, now: float) -> BudgetCheck:
        as_of = [h.budget.as_of for h in self.view.health.values() if h.budget.as_of > 0]
        if self.view.overall_budget.as_of > 0:
            as_of.append(self.view.overall_budget.as_of)
        # What the ledger snapshots already count need not be remembered (a month at most).
        self.tracker.forget_before(max(min(as_of, default=now) - 60.0, month_start(now)))
        return BudgetCheck(self.view.health, self.view.overall_budget, self.tracker, now)

    def _pinned(self, task: Task, decision: Decision, pin: str, budget: BudgetCheck) -> Decision:
        """The seed's call(backend_key, ...): straight to one backend, no fallback; the hard
        constraints that protect privacy and budgets still hold."""
        reasons = (Reason("pinned", f"backend {pin} requested by the caller"),)
        skipped: list[Skip] = []
        b = self.view.backends.get(pin)
        h = self.view.health.get(pin)
        estimate, max_output = decision.estimated_input_tokens, task.request.max_output_tokens
        over = budget.over(pin, upper_cost(b, estimate, max_output)) if b is not None else None
        if b is None:
            skipped.append(Skip(pin, "not_configured", "no such backend"))
        elif task.private and not b.private:
            skipped.append(Skip(pin, "not_private", "the task is private; this backend is not"))
        elif over:
            skipped.append(Skip(pin, "over_budget", over))
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

    async def rate(
        self, request: common_pb2.RateRequest, client: str = ""
    ) -> common_pb2.RateResponse:
        """Forward a rating to the caller, which stores it beside the attempt that answered,
        if that was ``client``'s (raises grpc.aio.AioRpcError with the caller's status on a
        refused rating)."""
        with self.tracer.start_as_current_span("rate") as span:
            _client_attribute(span, client)
            response = await self.caller.rate(request, timeout=RATE_TIMEOUT_S, client=client)
            span.set_attribute("uniwizard.backend", response.backend)
            span.set_attribute("uniwizard.route.category", response.category)
            span.set_attribute("uniwizard.rating.score", response.score)
            if response.label:  # a checked short token, never free text
                span.set_attribute("uniwizard.rating.label", response.label)
            return response

    def route(self, task: Task, client: str = "", *, category: str = "") -> Decision:
        with self.tracer.start_as_current_span("route") as span:
            _client_attribute(span, client)
            decision = self.decide(task, category=category)
            _decision_attributes(span, decision)
            return decision

    # -- Dispatch ----------------------------------------------------------------------------

    async def over_budget(self, client: str, budget: Budget | None) -> Reached | None:
        """Why ``client`` (whose token has ``budget``) may not start a task now, or None."""
        return await self.clients.over(client, budget)

    async def dispatch(self, job: DispatchJob) -> DispatchReport:
        """Run call_with_fallback; raises DispatchFailed with the report when nothing answered."""
        report = None
        # Run the walk to its end (never break out of it): its spans must close where they opened.
        async for item in self._walk(job, stream=False):
            if isinstance(item, DispatchReport):
                report = item
        assert report is not None, "_walk ends with a report or raises"
        return report

    async def dispatch_stream(self, job: DispatchJob) -> AsyncGenerator[StreamItem, None]:
        """Decision first; then failed attempts (CallResult), the backend that answers
        (Answering) and its deltas; the report last."""
        async with aclosing(self._walk(job, stream=True)) as items:
            async for item in items:
                yield item

    def _start(self, job: DispatchJob, stream: bool) -> _Run:
        deadline = time.monotonic() + (job.deadline_s if job.deadline_s else DEFAULT_DEADLINE_S)
        task = job.task
        if not task.request_id:
            task = replace(task, request_id=uuid.uuid4().hex)
        decision = self.decide(task, job.pin, job.category)
        trace_id = telemetry.current_trace_id() or job.trace_id or uuid.uuid4().hex
        report = DispatchReport(
            decision,
            task.request_id,
            trace_id,
            request_pb=job.request_pb,
            client=job.client,
            budget=job.budget,
        )
        return _Run(task, report, deadline, stream)

    async def _walk(self, job: DispatchJob, *, stream: bool) -> AsyncGenerator[StreamItem, None]:
        with self.tracer.start_as_current_span("dispatch") as span:
            run = self._start(job, stream)
            report = run.report
            _decision_attributes(span, report.decision)
            span.set_attribute("uniwizard.request_id", report.request_id)
            _client_attribute(span, report.client)
            yield report.decision
            walk = ChainWalk(report.decision.chain, report.decision.estimated_input_tokens)
            while (key := walk.next(self.view.backends)) is not None:
                trial = await self._admit(run, key)
                if trial is None:
                    continue
                async for item in self._try_backend(run, key, trial):
                    yield item
                if report.answer is not None:
                    yield _finish_span(span, report)
                    return
                if report.failure is not None:
                    raise DispatchFailed(_finish_span(span, report))
                if run.step is not None and run.step.action is Action.NEXT_LARGER:
                    walk.require_larger_than(key, self.view.backends)
            report.failure, report.message = self._exhausted(report)
            raise DispatchFailed(_finish_span(span, report))

    async def _admit(self, run: _Run, key: str) -> bool | None:
        """Whether ``key`` may be tried now: None to skip it, else whether this is a half-open
        trial (exactly one request, no retry)."""
        b = self.view.backends.get(key)
        if b is None or (run.task.private and not b.private):
            return None  # defence in depth: the chain was already filtered
        if not self._is_half_open(key):
            return False
        if self.registry is None or await self.registry.acquire_trial(key):
            return True
        skip = Skip(key, "half_open", "a half-open trial is already in flight")
        decision = run.report.decision
        run.report.decision = replace(decision, skipped=(*decision.skipped, skip))
        return None

    async def _try_backend(
        self, run: _Run, key: str, trial: bool
    ) -> AsyncGenerator[Answering | Delta | CallResult, None]:
        """Attempts on one backend until it answers, the outcome says stop or move on, or the
        deadline passes. Yields (streams only) each failed attempt, then ``Answering`` and the
        deltas of the answer; leaves the answer, the failure or the next step on ``run``."""
        run.step = None
        tries = 0
        while True:
            remaining = run.remaining()
            if remaining <= 0.05:
                run.fail(Outcome.TIMEOUT, "deadline exceeded")
                return
            tries += 1
            result: CallResult | None = None
            async for event in self._attempt(run, key, remaining):
                if isinstance(event, Delta):
                    if not run.committed:
                        run.committed = True
                        b = self.view.backends.get(key)
                        yield Answering(key, b.model if b is not None else "")
                    yield event
                else:
                    result = event
            assert result is not None, "an attempt ends with its result"
            if result.outcome is Outcome.SUCCESS:
                run.report.answer = result
                return
            if run.committed:
                run.fail(
                    result.outcome,
                    f"{key} failed after part of the answer was sent "
                    f"({result.outcome.value}: {result.error_message})",
                )
                return
            if run.stream:
                yield result
            # A half-open trial is exactly one request: no retry on the same backend.
            used = self.fallback.max_tries_per_backend if trial else tries
            step = next_step(result, used, run.remaining(), self.fallback)
            if step.action is Action.RETRY:
                await asyncio.sleep(step.delay_s)
                continue
            if step.action is Action.STOP:
                run.fail(result.outcome, f"{key}: {result.outcome.value}: {result.error_message}")
            run.step = step
            return

    async def _attempt(
        self, run: _Run, key: str, remaining: float
    ) -> AsyncGenerator[Delta | CallResult, None]:
        """One attempt through the caller link, in its own span: deltas, then its result."""
        report = run.report
        with self.tracer.start_as_current_span(f"attempt {key}") as span:
            span.set_attribute("uniwizard.backend", key)
            span.set_attribute("uniwizard.attempt", len(report.attempts) + 1)
            request = self._call_request(run, key)
            reserved = self._reserve(run, key)
            client = report.client
            cost = 0.0
            try:
                if not run.stream:
                    result = await self.caller.call(
                        request, timeout=remaining, trace_id=report.trace_id, client=client
                    )
                    cost = result.cost_usd
                    _attempted(span, report, result)
                    yield result
                    return
                events = self.caller.call_stream(
                    request, timeout=remaining, trace_id=report.trace_id, client=client
                )
                async with aclosing(events) as items:
                    async for event in items:
                        if isinstance(event, CallResult):
                            cost = event.cost_usd
                            _attempted(span, report, event)
                        yield event
            finally:
                now = time.time()
                self.tracker.release(key, reserved, cost, now)
                if report.budget is not None:
                    self.clients.tracker.release(client, reserved, cost, now)

    def _reserve(self, run: _Run, key: str) -> float:
        """Hold the attempt's upper cost against the budgets (the backend's, and the client's
        when its token has one) until it ends."""
        b = self.view.backends.get(key)
        if b is None:
            return 0.0
        estimate = run.report.decision.estimated_input_tokens
        cost = upper_cost(b, estimate, run.task.request.max_output_tokens)
        self.tracker.reserve(key, cost)
        if run.report.budget is not None:
            self.clients.tracker.reserve(run.report.client, cost)
        return cost

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

    def _call_request(self, run: _Run, key: str) -> caller_pb2.CallRequest:
        report = run.report
        if report.request_pb is None:
            report.request_pb = request_to_pb(run.task.request)
        return caller_pb2.CallRequest(
            backend=key,
            request=report.request_pb,  # only the blind request's fields travel
            request_id=report.request_id,
            category=report.decision.category,
            attempt=len(report.attempts) + 1,
        )


def _attempted(span: Span, report: DispatchReport, result: CallResult) -> None:
    report.attempts.append(result)
    _attempt_attributes(span, result)


def _client_attribute(span: Span, client: str) -> None:
    """The name of the token the request is for (never the token)."""
    if client:
        span.set_attribute("uniwizard.client", client)


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
