"""Uniwizard client stub: the seed's ``BackendRouter`` interface over gRPC.

No Evennia dependency: grpcio, opentelemetry-api and the ``uniwizard`` package only.

    from uniwizard_client import BackendRouter
    router = BackendRouter()                       # UNIWIZARD_ROUTER_ADDR or 127.0.0.1:50052
    router.route("Who was the first emperor of Rome?")            # -> "gpt"
    router.call("claude", "Review this diff")                      # pinned: no fallback
    router.call_with_fallback("Who was the first emperor of Rome?")
"""

from uniwizard.types import Attachment
from uniwizard_client.aio import AsyncBackendRouter
from uniwizard_client.errors import RouterError, RouterUnavailable
from uniwizard_client.health import BackendState, fetch_health, set_enabled
from uniwizard_client.results import AttemptInfo, Reason, RouteInfo, Skipped, ThinkResult
from uniwizard_client.router import BackendRouter
from uniwizard_client.task import Task, TaskLike

__all__ = [
    "AsyncBackendRouter",
    "Attachment",
    "AttemptInfo",
    "BackendRouter",
    "BackendState",
    "Reason",
    "RouteInfo",
    "RouterError",
    "RouterUnavailable",
    "Skipped",
    "Task",
    "TaskLike",
    "ThinkResult",
    "fetch_health",
    "set_enabled",
]
