"""What the sync and asyncio routers share: configuration, requests, results, spans."""

from __future__ import annotations

import grpc
from opentelemetry import trace

from uniwizard.auth import CLIENT_METADATA, checked_name
from uniwizard.v1 import router_pb2
from uniwizard_client.channels import ServiceClient
from uniwizard_client.errors import RouterError
from uniwizard_client.results import RouteInfo, ThinkResult, route_info, think_result
from uniwizard_client.task import TaskLike, task_pb
from uniwizard_client.tracing import Metadata, get_tracer

DEFAULT_DEADLINE = 60.0
ROUTE_SPAN = "uniwizard.route"
THINK_SPAN = "uniwizard.think"
THINK_STREAM_SPAN = "uniwizard.think_stream"


class RouterBase(ServiceClient):
    service = "router"
    default_deadline = DEFAULT_DEADLINE

    def __init__(
        self,
        target: str | None = None,
        *,
        deadline: float = DEFAULT_DEADLINE,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ):
        super().__init__(target, deadline=deadline, token=token, credentials=credentials)
        self._tracer = get_tracer(tracer_provider)

    @staticmethod
    def _acting_for(client: str | None) -> Metadata:
        """The metadata naming the client a call is made for (``on_behalf_of``).

        The router records (ledger row, spans, ``usage --by caller``) and budgets the call
        under that name only when this client's own token has the ``service`` scope (or the
        call comes from within the router's process); from any other token it keeps that
        token's own name. Raises ValueError for a name that could not be a token's."""
        if not client:
            return ()
        return ((CLIENT_METADATA, checked_name(client, "on_behalf_of")),)

    @staticmethod
    def _route_request(task: TaskLike, category: str | None = None) -> router_pb2.RouteRequest:
        return router_pb2.RouteRequest(task=task_pb(task), category=category or "")

    @staticmethod
    def _dispatch_request(
        task: TaskLike, backend: str | None, category: str | None = None
    ) -> router_pb2.DispatchRequest:
        return router_pb2.DispatchRequest(
            task=task_pb(task), backend=backend or "", category=category or ""
        )

    @staticmethod
    def _decided(span: trace.Span, pb: router_pb2.RouteDecision) -> RouteInfo:
        info = route_info(pb)
        if span.is_recording():
            span.set_attribute("uniwizard.category", info.category)
            span.set_attribute("uniwizard.backend", info.backend or "")
            span.set_attribute("uniwizard.chain", list(info.chain))
        return info

    @classmethod
    def _answered(cls, span: trace.Span, pb: router_pb2.DispatchResult) -> ThinkResult:
        return cls._noted(span, think_result(pb))

    @staticmethod
    def _noted(span: trace.Span, result: ThinkResult) -> ThinkResult:
        if span.is_recording():
            span.set_attribute("uniwizard.category", result.category)
            span.set_attribute("uniwizard.backend", result.backend)
            span.set_attribute("uniwizard.attempts", len(result.attempts))
            span.set_attribute("uniwizard.cost_usd", result.cost_usd)
        return result

    @staticmethod
    def _stream_cut() -> RouterError:
        # The contract: a stream ends with `done` or with an error status, never just ends.
        return RouterError("the router ended the stream without a result", outcome="malformed")

    @staticmethod
    def _backend_of(info: RouteInfo) -> str:
        if info.backend is None:
            why = "; ".join(f"{s.backend}: {s.reason}" for s in info.skipped)
            raise RouterError(
                f"no backend is eligible for this {info.category} task"
                + (f" ({why})" if why else ""),
                outcome="no_backend",
            )
        return info.backend
