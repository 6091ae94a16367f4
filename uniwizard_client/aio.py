"""The asyncio client: ``AsyncBackendRouter``, the same methods over ``grpc.aio``."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import grpc

from uniwizard.net import CHANNEL_OPTIONS
from uniwizard.v1 import router_pb2_grpc
from uniwizard_client._base import ROUTE_SPAN, THINK_SPAN, RouterBase
from uniwizard_client.errors import from_rpc_error
from uniwizard_client.results import RouteInfo, ThinkResult
from uniwizard_client.task import TaskLike
from uniwizard_client.tracing import call_metadata, client_span


class AsyncBackendRouter(RouterBase):
    """Like :class:`~uniwizard_client.BackendRouter`, with coroutines. The channel is opened on
    first use, in the running event loop; close it with ``await router.close()``."""

    _channel: grpc.aio.Channel | None = None
    _stub: router_pb2_grpc.RouterStub | None = None

    def _router(self) -> router_pb2_grpc.RouterStub:
        if self._stub is None:
            self._channel = (
                grpc.aio.secure_channel(self.target, self.credentials, options=CHANNEL_OPTIONS)
                if self.credentials is not None
                else grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            )
            self._stub = router_pb2_grpc.RouterStub(self._channel)
        return self._stub

    async def _invoke(self, method: str, request: Any, deadline: float | None) -> Any:
        rpc = getattr(self._router(), method)
        try:
            return await rpc(
                request, timeout=self._timeout(deadline), metadata=call_metadata(self.token)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, service="router", target=self.target) from None

    async def route(self, task: TaskLike, *, deadline: float | None = None) -> str:
        return self._backend_of(await self.decide(task, deadline=deadline))

    async def call(
        self, backend_key: str, prompt: TaskLike, *, deadline: float | None = None
    ) -> str:
        return (await self.dispatch(prompt, backend=backend_key, deadline=deadline)).text

    async def call_with_fallback(self, task: TaskLike, *, deadline: float | None = None) -> str:
        return (await self.dispatch(task, deadline=deadline)).text

    async def decide(self, task: TaskLike, *, deadline: float | None = None) -> RouteInfo:
        with client_span(self._tracer, ROUTE_SPAN, self.target) as span:
            pb = await self._invoke("Route", self._route_request(task), deadline)
            return self._decided(span, pb)

    async def dispatch(
        self, task: TaskLike, backend: str | None = None, *, deadline: float | None = None
    ) -> ThinkResult:
        with client_span(self._tracer, THINK_SPAN, self.target) as span:
            pb = await self._invoke("Dispatch", self._dispatch_request(task, backend), deadline)
            return self._answered(span, pb)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = None
        self._stub = None

    async def __aenter__(self) -> AsyncBackendRouter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
