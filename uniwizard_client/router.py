"""The blocking client: ``BackendRouter`` (the seed's interface, over gRPC)."""

from __future__ import annotations

import threading
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


class BackendRouter(RouterBase):
    """Route and dispatch tasks through router_svc. Thread-safe; one channel, opened lazily.

    ``target`` defaults to ``UNIWIZARD_ROUTER_ADDR`` or ``127.0.0.1:50052``; ``deadline`` (s) is
    the default per call; ``token`` is sent as ``authorization: Bearer <token>``.
    """

    _channel: grpc.Channel | None = None
    _stub: router_pb2_grpc.RouterStub | None = None
    _lock = threading.Lock()

    def _router(self) -> router_pb2_grpc.RouterStub:
        with self._lock:
            if self._stub is None:
                self._channel = (
                    grpc.secure_channel(self.target, self.credentials, options=CHANNEL_OPTIONS)
                    if self.credentials is not None
                    else grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
                )
                self._stub = router_pb2_grpc.RouterStub(self._channel)
            return self._stub

    def _invoke(self, method: str, request: Any, deadline: float | None) -> Any:
        rpc = getattr(self._router(), method)
        try:
            return rpc(request, timeout=self._timeout(deadline), metadata=call_metadata(self.token))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, service="router", target=self.target) from None

    # -- the seed's interface ------------------------------------------------------------------

    def route(self, task: TaskLike, *, deadline: float | None = None) -> str:
        """The key of the backend that would take ``task`` (raises ``no_backend`` if none)."""
        return self._backend_of(self.decide(task, deadline=deadline))

    def call(self, backend_key: str, prompt: TaskLike, *, deadline: float | None = None) -> str:
        """Ask exactly ``backend_key``: no fallback."""
        return self.dispatch(prompt, backend=backend_key, deadline=deadline).text

    def call_with_fallback(self, task: TaskLike, *, deadline: float | None = None) -> str:
        """Walk the routed chain until a backend answers."""
        return self.dispatch(task, deadline=deadline).text

    # -- the richer interface ------------------------------------------------------------------

    def decide(self, task: TaskLike, *, deadline: float | None = None) -> RouteInfo:
        """The routing decision with its reasons, chain and skipped backends. Calls nothing."""
        with client_span(self._tracer, ROUTE_SPAN, self.target) as span:
            pb = self._invoke("Route", self._route_request(task), deadline)
            return self._decided(span, pb)

    def dispatch(
        self, task: TaskLike, backend: str | None = None, *, deadline: float | None = None
    ) -> ThinkResult:
        """Answer ``task`` (pinned to ``backend`` when given) with every attempt accounted."""
        with client_span(self._tracer, THINK_SPAN, self.target) as span:
            pb = self._invoke("Dispatch", self._dispatch_request(task, backend), deadline)
            return self._answered(span, pb)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._stub = None

    def __enter__(self) -> BackendRouter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
