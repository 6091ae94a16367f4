"""The blocking client: ``BackendRouter`` (the seed's interface, over gRPC)."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import closing
from types import TracebackType

from opentelemetry import trace

from uniwizard.v1 import router_pb2, router_pb2_grpc
from uniwizard_client._base import (
    ROUTE_SPAN,
    THINK_SPAN,
    THINK_STREAM_SPAN,
    RouterBase,
)
from uniwizard_client.channels import SyncConnection
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


class BackendRouter(RouterBase):
    """Route and dispatch tasks through router_svc. Thread-safe; one channel, opened lazily.

    ``target`` defaults to ``UNIWIZARD_ROUTER_ADDR`` or ``127.0.0.1:50052`` and may name several
    routers (``dns:///router:50052``, ``IP:PORT,IP:PORT``: round robin over those serving);
    ``deadline`` (s) is the default per call; ``token`` is sent as ``authorization: Bearer``.
    """

    _conn: SyncConnection[router_pb2_grpc.RouterStub]

    def _connect(self) -> SyncConnection[router_pb2_grpc.RouterStub]:
        return SyncConnection(self.endpoint, router_pb2_grpc.RouterStub)

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

    def decide(
        self, task: TaskLike, *, category: str | None = None, deadline: float | None = None
    ) -> RouteInfo:
        """The routing decision with its reasons, chain and skipped backends. Calls nothing.
        ``category``: that category's chain instead of classifying."""
        with client_span(self._tracer, ROUTE_SPAN, self.target) as span:
            request = self._route_request(task, category)
            pb = self._conn.unary("Route", request, self._timeout(deadline))
            return self._decided(span, pb)

    def dispatch(
        self,
        task: TaskLike,
        backend: str | None = None,
        *,
        category: str | None = None,
        deadline: float | None = None,
        on_behalf_of: str | None = None,
    ) -> ThinkResult:
        """Answer ``task`` (pinned to ``backend`` when given; or on ``category``'s chain, with
        fallback, instead of classifying it) with every attempt accounted. ``on_behalf_of``:
        the client the call is made for, believed from a ``service`` token only (a front end
        such as the HTTP edge, which checked that client's own token)."""
        with client_span(self._tracer, THINK_SPAN, self.target) as span:
            request = self._dispatch_request(task, backend, category)
            acting = self._acting_for(on_behalf_of)
            pb = self._conn.unary("Dispatch", request, self._timeout(deadline), metadata=acting)
            return self._answered(span, pb)

    def dispatch_stream(
        self,
        task: TaskLike,
        backend: str | None = None,
        *,
        category: str | None = None,
        deadline: float | None = None,
        on_behalf_of: str | None = None,
    ) -> Generator[StreamEvent, None, None]:
        """Like :meth:`dispatch`, as it happens: a generator of ``Routed``, ``AttemptFailed``,
        ``Answering`` (once, before the first text), ``TextDelta`` and ``ToolCalled`` events,
        ending with the ``ThinkResult``.

        A failure raises the same ``RouterError`` as :meth:`dispatch` (after the events so far).
        Closing the generator early cancels the call. ``deadline`` bounds the whole stream.
        """
        request = self._dispatch_request(task, backend, category)
        return self._stream(request, self._timeout(deadline), self._acting_for(on_behalf_of))

    def _stream(
        self, request: object, timeout: float, acting: Metadata = ()
    ) -> Generator[StreamEvent, None, None]:
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
            with closing(messages):
                for pb in messages:
                    event = events.event(pb)
                    if isinstance(event, ThinkResult):
                        result = self._noted(span, event)
                        break
                    if event is not None:
                        yield event
            if result is None:
                raise self._stream_cut()
        yield result  # the call and its span are over before the consumer sees the result

    def rate(
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
        return rated(self._conn.unary("Rate", request, self._timeout(deadline), metadata=acting))

    def catalog(self, *, deadline: float | None = None) -> Catalog:
        """The router's categories and backends, each backend with its health."""
        request = router_pb2.CatalogRequest()
        return catalog(self._conn.unary("Catalog", request, self._timeout(deadline)))

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> BackendRouter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
