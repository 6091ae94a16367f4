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

The registry and the caller: ``RegistryClient`` (``list_backends``, ``set_enabled``,
``reload``) and ``CallerClient`` (``usage``); ``fetch_health`` / ``set_enabled`` as one-shots.
"""

from uniwizard.types import Attachment
from uniwizard_client.aio import AsyncBackendRouter
from uniwizard_client.errors import RouterError, RouterUnavailable
from uniwizard_client.health import fetch_health, set_enabled
from uniwizard_client.results import (
    AttemptInfo,
    BackendList,
    BackendState,
    BackendUsage,
    Reason,
    ReloadResult,
    RouteInfo,
    Skipped,
    ThinkResult,
    UsageReport,
)
from uniwizard_client.router import BackendRouter
from uniwizard_client.services import CallerClient, RegistryClient
from uniwizard_client.task import Task, TaskLike

__all__ = [
    "AsyncBackendRouter",
    "Attachment",
    "AttemptInfo",
    "BackendList",
    "BackendRouter",
    "BackendState",
    "BackendUsage",
    "CallerClient",
    "Reason",
    "RegistryClient",
    "ReloadResult",
    "RouteInfo",
    "RouterError",
    "RouterUnavailable",
    "Skipped",
    "Task",
    "TaskLike",
    "ThinkResult",
    "UsageReport",
    "fetch_health",
    "set_enabled",
]
