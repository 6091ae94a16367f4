"""The Router gRPC edge."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from router_svc.chain import Decision
from router_svc.client_budget import Reached
from router_svc.convert import catalog_to_pb, decision_to_pb, failure_to_pb, result_to_pb
from router_svc.dispatch import (
    Answering,
    DispatchFailed,
    DispatchJob,
    DispatchReport,
    RouterCore,
)
from router_svc.policy import Policy
from uniwizard import telemetry
from uniwizard.auth_grpc import calling_client
from uniwizard.config_types import Budget
from uniwizard.convert import attempt_to_pb, delta_events, task_from_pb
from uniwizard.limits import Limits, check_deadline, check_request
from uniwizard.types import CallResult, Delta, Outcome, Task
from uniwizard.v1 import common_pb2, router_pb2, router_pb2_grpc

Context = grpc.aio.ServicerContext

# How a failed dispatch surfaces as a gRPC status.
STATUS_FOR = {
    Outcome.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    Outcome.CONTENT_POLICY: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.IDENTITY_LEAK: grpc.StatusCode.PERMISSION_DENIED,
    Outcome.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Outcome.CANCELLED: grpc.StatusCode.CANCELLED,
    Outcome.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def validate_task(pb: common_pb2.Task, limits: Limits) -> str | None:
    """A clear reason the task cannot be routed, naming the field or limit, or None."""
    problem = check_request(pb.request, limits, "task.request")
    if problem:
        return problem
    last = pb.request.messages[-1]
    if not last.text.strip() and not last.attachments and not last.tool_call_id:
        return "the task is empty: the last message has no text and no attachments"
    if pb.latency_budget_ms < 0 or pb.max_cost_usd < 0:
        return "latency_budget_ms and max_cost_usd must not be negative"
    return None


def check_selection(category: str, backend: str, policy: Policy) -> str | None:
    """Why a requested category (or category and backend together) cannot be used, or None."""
    if not category:
        return None
    if backend:
        return "set backend (one backend, no fallback) or category (its chain), not both"
    if category not in policy.names:
        return (
            f"category {category!r} is not in the routing policy "
            f"(categories: {', '.join(policy.names)})"
        )
    return None


def failure_status(report: DispatchReport) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(failure_to_pb(report))
    code = STATUS_FOR.get(report.failure or Outcome.NO_BACKEND, grpc.StatusCode.UNAVAILABLE)
    return status_pb2.Status(code=code.value[0], message=report.message[:1000], details=[detail])


def budget_status(client: str, over: Reached, now: float) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED for a client at its budget, in gRPC's standard error model: a
    ``google.rpc.QuotaFailure`` (subject ``client:<name>``) says it is a quota, not a size
    limit, and a ``google.rpc.RetryInfo`` says when the cap's window starts again."""
    quota, retry = any_pb2.Any(), any_pb2.Any()
    quota.Pack(
        error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=f"client:{client}", description=over.message
                )
            ]
        )
    )
    wait = error_details_pb2.RetryInfo()
    wait.retry_delay.seconds = max(1, math.ceil(over.resets_at - now))
    retry.Pack(wait)
    code = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    return status_pb2.Status(code=code, message=over.message, details=[quota, retry])


async def abort_failed(context: Context, report: DispatchReport) -> NoReturn:
    """End the call with the failure's status and its DispatchFailure in the status details."""
    status = rpc_status.to_status(failure_status(report))
    await context.abort(status.code, status.details, status.trailing_metadata)


assert code_pb2.UNAVAILABLE == grpc.StatusCode.UNAVAILABLE.value[0]


def incoming_trace_id(context: Context) -> str:
    return telemetry.trace_id_from_metadata(context.invocation_metadata())


class RouterServicer(router_pb2_grpc.RouterServicer):
    """``budget_of``: a client's budget by its name (its token's entry in the tokens file)."""

    def __init__(
        self,
        core: RouterCore,
        limits: Limits | None = None,
        budget_of: Callable[[str], Budget | None] | None = None,
    ):
        self.core = core
        self.limits = limits or Limits()
        self.budget_of = budget_of or (lambda name: None)

    async def _client(self, context: Context) -> str:
        """The client this call is for: the caller's token's name, or the one a service
        token names (see uniwizard.auth_grpc.calling_client); INVALID_ARGUMENT if malformed."""
        try:
            return calling_client(context.invocation_metadata())
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # not reached: abort raises

    async def _task(
        self, pb: common_pb2.Task, context: Context, category: str = "", backend: str = ""
    ) -> Task:
        problem = (
            validate_task(pb, self.limits)
            or check_deadline(context.time_remaining(), self.limits)
            or check_selection(category, backend, self.core.policy)
        )
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return task_from_pb(pb)

    async def _job(self, request: router_pb2.DispatchRequest, context: Context) -> DispatchJob:
        """The dispatch to run: a valid task, for a client within its budget (INVALID_ARGUMENT,
        RESOURCE_EXHAUSTED naming the budget, otherwise)."""
        task = await self._task(request.task, context, request.category, request.backend)
        client = await self._client(context)
        budget = self.budget_of(client)
        over = await self.core.over_budget(client, budget)
        if over is not None:
            status = rpc_status.to_status(budget_status(client, over, time.time()))
            await context.abort(status.code, status.details, status.trailing_metadata)
        remaining = context.time_remaining()
        return DispatchJob(
            task,
            pin=request.backend,
            category=request.category,
            deadline_s=None if remaining is None else min(remaining, self.limits.max_deadline_s),
            trace_id=incoming_trace_id(context),
            request_pb=request.task.request,
            client=client,
            budget=budget,
        )

    async def Route(
        self, request: router_pb2.RouteRequest, context: Context
    ) -> router_pb2.RouteDecision:
        task = await self._task(request.task, context, request.category)
        return decision_to_pb(
            self.core.route(task, await self._client(context), category=request.category)
        )

    async def Dispatch(
        self, request: router_pb2.DispatchRequest, context: Context
    ) -> router_pb2.DispatchResult:
        job = await self._job(request, context)
        try:
            report = await self.core.dispatch(job)
        except DispatchFailed as failed:
            await abort_failed(context, failed.report)
        return result_to_pb(report)

    async def DispatchStream(
        self, request: router_pb2.DispatchRequest, context: Context
    ) -> AsyncIterator[router_pb2.DispatchEvent]:
        stream = self.core.dispatch_stream(await self._job(request, context))
        try:
            async with aclosing(stream) as items:  # closed in this task if the client cancels
                async for item in items:
                    if isinstance(item, Decision):
                        yield router_pb2.DispatchEvent(decision=decision_to_pb(item))
                    elif isinstance(item, Answering):
                        answering = router_pb2.Answering(backend=item.backend, model=item.model)
                        yield router_pb2.DispatchEvent(answering=answering)
                    elif isinstance(item, Delta):
                        for event in delta_events(item, router_pb2.DispatchEvent):
                            yield event
                    elif isinstance(item, CallResult):
                        yield router_pb2.DispatchEvent(attempt_failed=attempt_to_pb(item))
                    elif isinstance(item, DispatchReport):
                        yield router_pb2.DispatchEvent(done=result_to_pb(item, with_text=False))
        except DispatchFailed as failed:
            await abort_failed(context, failed.report)

    async def Catalog(
        self, request: router_pb2.CatalogRequest, context: Context
    ) -> router_pb2.CatalogResponse:
        return catalog_to_pb(self.core.policy, self.core.view)

    async def Rate(
        self, request: common_pb2.RateRequest, context: Context
    ) -> common_pb2.RateResponse:
        client = await self._client(context)
        try:
            return await self.core.rate(request, client)
        except grpc.aio.AioRpcError as exc:  # the caller's answer: NOT_FOUND, ALREADY_EXISTS...
            code = exc.code()
            if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                await context.abort(code, f"caller_svc: {exc.details() or code.name}")
            await context.abort(code, exc.details() or code.name)
