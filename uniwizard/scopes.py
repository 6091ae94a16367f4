"""Which scope each RPC needs: the rules as data, one entry per RPC, the reason beside it
(README, "Tokens and scopes", shows the same table).

``grpc.health.v1.Health`` needs no token at all (orchestrators; it says SERVING or not, nothing
else). ``None`` below means any valid token and no scope: the read-only RPCs. An RPC that is not
in :data:`METHOD_SCOPES` is refused (PERMISSION_DENIED) for every token: a new RPC must be given
its scope here before anyone can call it (a test checks every RPC of the contracts is here).
"""

from __future__ import annotations

from typing import Final

from uniwizard.auth import Scope

OPEN_PREFIX: Final = "/grpc.health.v1.Health/"  # no token needed

_ANY: Final = None  # any valid token

METHOD_SCOPES: Final[dict[str, Scope | None]] = {
    # A decision only: nothing is sent, nothing spent.
    "/uniwizard.v1.Router/Route": Scope.ROUTE,
    # A task answered, money spent.
    "/uniwizard.v1.Router/Dispatch": Scope.THINK,
    "/uniwizard.v1.Router/DispatchStream": Scope.THINK,
    # Rating an answer it asked for (the caller stores a rating only beside the rater's own
    # request); it moves what routing learns.
    "/uniwizard.v1.Router/Rate": Scope.THINK,
    # Operator control.
    "/uniwizard.v1.Registry/SetEnabled": Scope.ADMIN,
    "/uniwizard.v1.Registry/Reload": Scope.ADMIN,
    # They move health, breakers, learned stats and spending: callers and routers only.
    "/uniwizard.v1.Registry/ReportOutcomes": Scope.SERVICE,
    "/uniwizard.v1.Registry/AcquireTrial": Scope.SERVICE,
    # One attempt on a named backend bypasses routing, budgets and fallback; the router's
    # forwarded rating. The router sends these, naming the client it acts for.
    "/uniwizard.v1.Caller/Call": Scope.SERVICE,
    "/uniwizard.v1.Caller/CallStream": Scope.SERVICE,
    "/uniwizard.v1.Caller/Rate": Scope.SERVICE,
    "/uniwizard.v1.Caller/ClientSpend": Scope.SERVICE,
    # Read-only: configuration (never a key), health, what was learned.
    "/uniwizard.v1.Registry/ListBackends": _ANY,
    "/uniwizard.v1.Registry/GetBackend": _ANY,
    "/uniwizard.v1.Registry/WatchHealth": _ANY,
    "/uniwizard.v1.Registry/Stats": _ANY,
    # Read-only: the categories and backends a request may name (the edge's model list).
    "/uniwizard.v1.Router/Catalog": _ANY,
    # Read-only totals; a token without admin or service sees only its own rows.
    "/uniwizard.v1.Caller/Usage": _ANY,
    # Read-only: the contracts.
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": _ANY,
}


class Unlisted(Exception):
    """The method has no scope in METHOD_SCOPES: nobody may call it."""


def required_scope(method: str) -> Scope | None:
    """The scope ``method`` (a full gRPC method name) needs; None: any valid token. Raises
    :class:`Unlisted` for a method with no entry."""
    try:
        return METHOD_SCOPES[method]
    except KeyError:
        raise Unlisted(f"{method} has no scope assigned; refused for every token") from None


def short_name(method: str) -> str:
    """``/uniwizard.v1.Registry/SetEnabled`` -> ``Registry.SetEnabled`` (for messages)."""
    service, _, rpc = method.lstrip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}.{rpc}" if service else method
