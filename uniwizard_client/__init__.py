"""Uniwizard client stub: the seed's ``BackendRouter`` interface over gRPC.

No Evennia dependency: grpcio, opentelemetry-api and the ``uniwizard`` package only. This package
is the one place that builds client channels (TLS and the bearer token from the same
``UNIWIZARD_*`` settings as every service), sends the trace context, and turns gRPC failures into
typed errors (``RouterError``; ``RouterUnavailable`` when a service cannot be reached).

    from uniwizard_client import BackendRouter
    router = BackendRouter()                       # UNIWIZARD_ROUTER_ADDR or 127.0.0.1:50052
    router.route("Who was the first emperor of Rome?")            # -> "gpt"
    router.call("claude", "Review this diff")                      # pinned: no fallback
    router.call_with_fallback("Who was the first emperor of Rome?")

Streaming: events as they happen, the full result last (``AsyncBackendRouter.dispatch_stream``
is the same as an async generator). Breaking out of the loop cancels the call.

    from uniwizard_client import AttemptFailed, TextDelta, ThinkResult, ToolCalled
    for event in router.dispatch_stream("Who was the first emperor of Rome?"):
        if isinstance(event, TextDelta):
            print(event.text, end="")
        elif isinstance(event, ToolCalled):          # id, name, arguments_json
            print(event.call.name, event.call.arguments_json)
        elif isinstance(event, AttemptFailed):       # the router falls back to the next backend
            print(event.attempt.backend, event.attempt.outcome)
        elif isinstance(event, ThinkResult):         # text, tool_calls, backend, attempts, cost
            print(event.backend, event.cost_usd)

The registry and the caller: ``RegistryClient`` (``list_backends``, ``set_enabled``,
``reload``) and ``CallerClient`` (``usage``); ``fetch_health`` / ``set_enabled`` as one-shots.
"""

from uniwizard.ratings import InvalidRating
from uniwizard.types import Attachment, OutputFormat, ResponseFormat, ToolCall, ToolDef
from uniwizard_client.aio import AsyncBackendRouter
from uniwizard_client.errors import RouterError, RouterUnavailable
from uniwizard_client.health import fetch_health, set_enabled
from uniwizard_client.learning import BudgetInfo, Rated, StatsRow, StatsTable
from uniwizard_client.results import (
    Answering,
    AttemptFailed,
    AttemptInfo,
    BackendList,
    BackendState,
    BackendUsage,
    Catalog,
    CategoryInfo,
    Reason,
    ReloadResult,
    Routed,
    RouteInfo,
    Skipped,
    StreamEvent,
    TextDelta,
    ThinkResult,
    ToolCalled,
    UsageReport,
)
from uniwizard_client.router import BackendRouter
from uniwizard_client.services import CallerClient, RegistryClient
from uniwizard_client.task import Task, TaskLike

__all__ = [
    "Answering",
    "AsyncBackendRouter",
    "Attachment",
    "AttemptFailed",
    "AttemptInfo",
    "BackendList",
    "BackendRouter",
    "BackendState",
    "BackendUsage",
    "BudgetInfo",
    "CallerClient",
    "Catalog",
    "CategoryInfo",
    "InvalidRating",
    "OutputFormat",
    "Rated",
    "Reason",
    "RegistryClient",
    "ReloadResult",
    "ResponseFormat",
    "RouteInfo",
    "Routed",
    "RouterError",
    "RouterUnavailable",
    "Skipped",
    "StatsRow",
    "StatsTable",
    "StreamEvent",
    "Task",
    "TaskLike",
    "TextDelta",
    "ThinkResult",
    "ToolCall",
    "ToolCalled",
    "ToolDef",
    "UsageReport",
    "fetch_health",
    "set_enabled",
]
