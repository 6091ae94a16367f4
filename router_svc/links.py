"""How the router reaches the caller and the registry: one small interface per link, chosen when
the service is wired. The gRPC implementations are here; the router core sees typed results.

* :class:`CallerLink` — one attempt on one backend (``Call``), or its stream (``CallStream``);
  a failure of the link itself (caller unreachable, deadline) comes back as the attempt's
  :class:`CallResult`, never as an exception. Each call names the client the router acts for
  (``x-uniwizard-client``): the caller believes it because the router's own token has the
  ``service`` scope.
* :class:`RegistryLink` — a half-open trial (``AcquireTrial``) and the health stream
  (``WatchHealth``) the router's :class:`~router_svc.health_view.HealthView` follows.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

import grpc

from uniwizard import telemetry
from uniwizard.auth import CLIENT_METADATA
from uniwizard.convert import call_result_from_pb, tool_call_from_pb
from uniwizard.types import CallResult, Delta, Outcome
from uniwizard.v1 import caller_pb2, caller_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc

SPEND_TIMEOUT_S = 2.0


class CallerLink(Protocol):
    async def call(
        self, request: caller_pb2.CallRequest, *, timeout: float, trace_id: str, client: str = ""
    ) -> CallResult: ...

    def call_stream(
        self, request: caller_pb2.CallRequest, *, timeout: float, trace_id: str, client: str = ""
    ) -> AsyncGenerator[Delta | CallResult, None]:
        """Deltas, then exactly one CallResult."""
        ...

    async def rate(
        self, request: common_pb2.RateRequest, *, timeout: float, client: str = ""
    ) -> common_pb2.RateResponse:
        """Store a rating; raises grpc.aio.AioRpcError with the caller's status if refused."""
        ...

    async def client_spend(
        self, day_start: float, month_start: float
    ) -> dict[str, tuple[float, float]]:
        """USD per client since ``day_start`` and since ``month_start``, from the ledger; raises
        grpc.aio.AioRpcError when it cannot be read."""
        ...


class RegistryLink(Protocol):
    async def acquire_trial(self, key: str) -> bool:
        """Whether this router may send the one trial request of a half-open backend."""
        ...

    def watch_health(self) -> AsyncIterator[registry_pb2.HealthEvent]:
        """A full snapshot, then every change; raises grpc.aio.AioRpcError when the link drops."""
        ...


class GrpcCallerLink:
    """caller_svc over a gRPC channel. A restarting caller delays an attempt (``wait_for_ready``)
    within its deadline instead of failing it."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = caller_pb2_grpc.CallerStub(channel)

    async def call(
        self, request: caller_pb2.CallRequest, *, timeout: float, trace_id: str, client: str = ""
    ) -> CallResult:
        started = time.perf_counter()
        try:
            pb = await self._stub.Call(
                request,
                timeout=timeout,
                metadata=_metadata(trace_id, client),
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            return caller_error(request.backend, exc, started)
        return call_result_from_pb(pb)

    async def call_stream(
        self, request: caller_pb2.CallRequest, *, timeout: float, trace_id: str, client: str = ""
    ) -> AsyncGenerator[Delta | CallResult, None]:
        started = time.perf_counter()
        call = self._stub.CallStream(
            request,
            timeout=timeout,
            metadata=_metadata(trace_id, client),
            wait_for_ready=True,
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
            result = caller_error(request.backend, exc, started)
        finally:
            call.cancel()  # a no-op once the stream has ended
        yield result or CallResult(
            backend=request.backend,
            model="",
            outcome=Outcome.TRUNCATED,
            error_message="caller stream ended without a result",
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def rate(
        self, request: common_pb2.RateRequest, *, timeout: float, client: str = ""
    ) -> common_pb2.RateResponse:
        return await self._stub.Rate(request, timeout=timeout, metadata=_metadata("", client))

    async def client_spend(
        self, day_start: float, month_start: float
    ) -> dict[str, tuple[float, float]]:
        reply = await self._stub.ClientSpend(
            caller_pb2.ClientSpendRequest(day_start=day_start, month_start=month_start),
            timeout=SPEND_TIMEOUT_S,
        )
        return {c.client: (c.today_usd, c.month_usd) for c in reply.clients}


class GrpcRegistryLink:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = registry_pb2_grpc.RegistryStub(channel)

    async def acquire_trial(self, key: str) -> bool:
        try:
            resp = await self._stub.AcquireTrial(
                registry_pb2.AcquireTrialRequest(key=key), timeout=1.0
            )
            return bool(resp.granted)
        except grpc.aio.AioRpcError:
            return True  # registry down: the last snapshot said half-open; let one through

    async def watch_health(self) -> AsyncIterator[registry_pb2.HealthEvent]:
        async for event in self._stub.WatchHealth(registry_pb2.WatchHealthRequest()):
            yield event


def _metadata(trace_id: str, client: str) -> tuple[tuple[str, str], ...]:
    """The trace context (when no SDK propagates it) and the client the router acts for."""
    named = ((CLIENT_METADATA, client),) if client else ()
    return (*telemetry.traceparent_metadata(trace_id), *named)


def caller_error(key: str, exc: grpc.aio.AioRpcError, started: float) -> CallResult:
    """An attempt that failed in the link: the caller could not be reached or answered with a
    gRPC error instead of a result."""
    code = exc.code()
    outcome = {
        grpc.StatusCode.DEADLINE_EXCEEDED: Outcome.TIMEOUT,
        grpc.StatusCode.CANCELLED: Outcome.CANCELLED,
        grpc.StatusCode.INVALID_ARGUMENT: Outcome.BAD_REQUEST,
        grpc.StatusCode.NOT_FOUND: Outcome.BAD_REQUEST,
        # The caller refused the router's own token: the stack is misconfigured (every backend
        # would meet the same refusal), so the dispatch stops, naming it.
        grpc.StatusCode.UNAUTHENTICATED: Outcome.NO_BACKEND,
        grpc.StatusCode.PERMISSION_DENIED: Outcome.NO_BACKEND,
    }.get(code, Outcome.NETWORK)
    return CallResult(
        backend=key,
        model="",
        outcome=outcome,
        latency_ms=(time.perf_counter() - started) * 1000,
        error_message=f"caller_svc: {code.name}: {exc.details() or ''}"[:300],
    )
