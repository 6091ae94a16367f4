"""The asyncio client: ``AsyncBackendRouter``, the same methods over ``grpc.aio``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from types import TracebackType

import grpc
from opentelemetry import trace

from uniwizard.v1 import router_pb2, router_pb2_grpc
from uniwizard_client._base import (
    DEFAULT_DEADLINE,
    ROUTE_SPAN,
    THINK_SPAN,
    THINK_STREAM_SPAN,
    RouterBase,
)
from uniwizard_client.channels import AsyncConnection
from uniwizard_client.learning import Rated, rate_request, rated
from uniwizard_client.results import (
    Catalog,
    RouteInfo,
    StreamAssembler,
    StreamEvent,
    ThinkResult,
    catalog,
)
from uniwizard_client.task import TaskLike
from uniwizard_client.tracing import Metadata, client_span


class AsyncBackendRouter(RouterBase):
    """Like :class:`~uniwizard_client.BackendRouter`, with coroutines. The channel is opened on
    first use, in the running event loop; close it with ``await router.close()``.

    ``channel``: talk over this channel instead of opening one to ``target`` (e.g. an
    in-process channel to a router in this process); ``close()`` leaves it open.
    """

    _conn: AsyncConnection[router_pb2_grpc.RouterStub]

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        deadline: float = DEFAULT_DEADLINE,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ):
        self._given_channel = channel
        super().__init__(
            target,
            deadline=deadline,
            token=token,
            credentials=credentials,
            tracer_provider=tracer_provider,
        )

    def _connect(self) -> AsyncConnection[router_pb2_grpc.RouterStub]:
        return AsyncConnection(
            self.endpoint, router_pb2_grpc.RouterStub, channel=self._given_channel
        )

    async def route(self, task: TaskLike, *, deadline: float | None = None) -> str:
        return self._backend_of(await self.decide(task, deadline=deadline))

    async def call(
        self, backend_key: str, prompt: TaskLike, *, deadline: float | None = None
    ) -> str:
        return (await self.dispatch(prompt, backend=backend_key, deadline=deadline)).text

    async def call_with_fallback(self, task: TaskLike, *, deadline: float | None = None) -> str:
        return (await self.dispatch(task, deadline=deadline)).text

    async def decide(
        self, task: TaskLike, *, category: str | None = None, deadline: float | None = None
    ) -> RouteInfo:
        with client_span(self._tracer, ROUTE_SPAN, self.target) as span:
            request = self._route_request(task, category)
            pb = await self._conn.unary("Route", request, self._timeout(deadline))
            return self._decided(span, pb)

    async def dispatch(
        self,
        task: TaskLike,
        backend: str | None = None,
        *,
        category: str | None = None,
        deadline: float | None = None,
        on_behalf_of: str | None = None,
    ) -> ThinkResult:
        with client_span(self._tracer, THINK_SPAN, self.target) as span:
            request = self._dispatch_request(task, backend, category)
            acting = self._acting_for(on_behalf_of)
            pb = await self._conn.unary(
                "Dispatch", request, self._timeout(deadline), metadata=acting
            )
            return self._answered(span, pb)

    def dispatch_stream(
        self,
        task: TaskLike,
        backend: str | None = None,
        *,
        category: str | None = None,
        deadline: float | None = None,
        on_behalf_of: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """An async generator of the same events as ``BackendRouter.dispatch_stream``::

            async for event in router.dispatch_stream(task):
                ...

        ``aclose()`` or cancelling the consuming task cancels the call.
        """
        request = self._dispatch_request(task, backend, category)
        return self._stream(request, self._timeout(deadline), self._acting_for(on_behalf_of))

    async def _stream(
        self, request: object, timeout: float, acting: Metadata = ()
    ) -> AsyncGenerator[StreamEvent, None]:
        result: ThinkResult | None = None
        with client_span(self._tracer, THINK_STREAM_SPAN, self.target, current=False) as span:
            events = StreamAssembler()
            messages = self._conn.stream(
                "DispatchStream",
                request,
                timeout,
                context=trace.set_span_in_context(span),
                metadata=acting,
            )
            async with aclosing(messages):
                async for pb in messages:
                    event = events.event(pb)
                    if isinstance(event, ThinkResult):
                        result = self._noted(span, event)
                        break
                    if event is not None:
                        yield event
            if result is None:
                raise self._stream_cut()
        yield result  # the call and its span are over before the consumer sees the result

    async def rate(
        self,
        request_id: str,
        score: float,
        *,
        label: str = "",
        trace_id: str = "",
        five_point: bool = False,
        deadline: float | None = None,
        on_behalf_of: str | None = None,
    ) -> Rated:
        """Rate the answer to ``request_id`` (``ThinkResult.request_id``; or, without it,
        ``trace_id``): ``score`` in [0, 1], or 1-5 stars with ``five_point``; ``label`` an
        optional short token (wrong, unhelpful, great ...). Ratings are final. Raises
        ``InvalidRating`` before sending; ``RouterError`` when refused (``bad_request`` for a
        request id no answer has, ``already_exists`` for one rated before)."""
        request = rate_request(
            request_id, score, label=label, trace_id=trace_id, five_point=five_point
        )
        acting = self._acting_for(on_behalf_of)
        return rated(
            await self._conn.unary("Rate", request, self._timeout(deadline), metadata=acting)
        )

    async def catalog(self, *, deadline: float | None = None) -> Catalog:
        """The router's categories and backends, each backend with its health."""
        request = router_pb2.CatalogRequest()
        return catalog(await self._conn.unary("Catalog", request, self._timeout(deadline)))

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> AsyncBackendRouter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
