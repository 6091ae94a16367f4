"""The Caller gRPC edge: protobuf in, typed values to CallerCore, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc

from caller_svc.core import CallContext, CallerCore, UnknownBackend
from caller_svc.ledger import AlreadyRated, LedgerUnavailable, Totals, UnknownRequest
from uniwizard import telemetry
from uniwizard.auth import current_principal
from uniwizard.auth_grpc import calling_client, sees_everyone
from uniwizard.convert import call_result_to_pb, delta_events, request_from_pb
from uniwizard.limits import Limits, check_deadline, check_request
from uniwizard.ratings import InvalidRating, Rating, rating
from uniwizard.types import CallResult
from uniwizard.v1 import caller_pb2, caller_pb2_grpc, common_pb2


class CallerServicer(caller_pb2_grpc.CallerServicer):
    def __init__(self, core: CallerCore, limits: Limits | None = None):
        self.core = core
        self.limits = limits or Limits()

    async def _context(
        self, request: caller_pb2.CallRequest, context: grpc.aio.ServicerContext
    ) -> CallContext:
        if not request.backend:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "backend is required")
        if not self.core.knows(request.backend):
            known = ", ".join(self.core.backend_keys())
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown backend {request.backend!r} (known: {known})",
            )
        problem = check_request(request.request, self.limits) or check_deadline(
            context.time_remaining(), self.limits
        )
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        client = await _client(context)
        return CallContext(
            request_id=request.request_id,
            category=request.category,
            attempt=max(1, request.attempt),
            trace_id=telemetry.current_trace_id()
            or telemetry.trace_id_from_metadata(context.invocation_metadata()),
            budget_s=context.time_remaining(),
            client=client,
        )

    async def Call(
        self, request: caller_pb2.CallRequest, context: grpc.aio.ServicerContext
    ) -> caller_pb2.CallResult:
        ctx = await self._context(request, context)
        try:
            result = await self.core.call(request.backend, request_from_pb(request.request), ctx)
        except UnknownBackend:  # raced with a reload
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown backend {request.backend!r}")
        return call_result_to_pb(result)

    async def CallStream(
        self, request: caller_pb2.CallRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[caller_pb2.CallEvent]:
        ctx = await self._context(request, context)
        stream = self.core.call_stream(request.backend, request_from_pb(request.request), ctx)
        # aclosing: a cancelled call closes the stream here, in this task (spans, ledger row).
        async with aclosing(stream) as items:
            async for item in items:
                if isinstance(item, CallResult):
                    yield caller_pb2.CallEvent(result=call_result_to_pb(item))
                else:
                    for event in delta_events(item, caller_pb2.CallEvent):
                        yield event

    async def Usage(
        self, request: caller_pb2.UsageRequest, context: grpc.aio.ServicerContext
    ) -> caller_pb2.UsageResponse:
        if (
            request.since < 0
            or request.until < 0
            or (request.until and request.until < request.since)
        ):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "need 0 <= since <= until")
        principal = current_principal()
        only = None if sees_everyone(principal) else principal.name
        clients: list[Totals] = []
        try:
            per, total = await self.core.usage(request.since, request.until, client=only)
            if request.by_client:
                clients, _ = await self.core.usage(
                    request.since, request.until, by="client", client=only
                )
        except LedgerUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return caller_pb2.UsageResponse(
            backends=[usage_pb(t) for t in per],
            total=usage_pb(total),
            since=request.since,
            until=request.until,
            clients=[usage_pb(t) for t in clients],
        )

    async def ClientSpend(
        self, request: caller_pb2.ClientSpendRequest, context: grpc.aio.ServicerContext
    ) -> caller_pb2.ClientSpendResponse:
        try:
            spent = await self.core.client_spend(request.day_start, request.month_start)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except LedgerUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return caller_pb2.ClientSpendResponse(
            clients=[
                caller_pb2.ClientSpend(client=name, today_usd=today, month_usd=month)
                for name, (today, month) in sorted(spent.items())
            ]
        )

    async def Rate(
        self, request: common_pb2.RateRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.RateResponse:
        client = await _client(context)
        try:
            r = rating_from_pb(request)
            rated = await self.core.rate(r, client)
        except InvalidRating as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except UnknownRequest as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except AlreadyRated as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except LedgerUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return common_pb2.RateResponse(
            request_id=rated.request_id,
            trace_id=rated.trace_id,
            backend=rated.backend,
            category=rated.category,
            score=rated.score,
            label=rated.label,
        )


async def _client(context: grpc.aio.ServicerContext) -> str:
    """The client the call is made for (the router names it); INVALID_ARGUMENT if malformed."""
    try:
        return calling_client(context.invocation_metadata())
    except ValueError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise  # not reached: abort raises


def rating_from_pb(pb: common_pb2.RateRequest) -> Rating:
    five = pb.scale == common_pb2.RATING_SCALE_FIVE
    return rating(pb.request_id, pb.trace_id, pb.score, pb.label, five_point=five)


def usage_pb(t: Totals) -> caller_pb2.BackendUsage:
    return caller_pb2.BackendUsage(
        backend=t.backend,
        attempts=t.attempts,
        successes=t.successes,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        cost_usd=t.cost_usd,
        estimated_rows=t.estimated_rows,
        cached_input_tokens=t.cached_input_tokens,
        cache_write_tokens=t.cache_write_tokens,
        reasoning_tokens=t.reasoning_tokens,
        client=t.client,
    )
