"""Who may use the edge: the one check every route but ``/health`` makes.

The same check as the gRPC services' (``uniwizard.auth``): the ``Authorization: Bearer`` token
must be known (``UNIWIZARD_TOKEN``, or a token of ``UNIWIZARD_TOKENS_FILE``), else 401, and
hold the ``think`` scope, else 403 naming it. With no token configured the edge is open, like
the gRPC services.
"""

from __future__ import annotations

from edge_svc.errors import forbidden, unauthorized
from uniwizard.auth import (
    Authorizer,
    PermissionDenied,
    Principal,
    Scope,
    Unauthenticated,
    bearer,
)

THINK = Scope.THINK  # the scope chat completions and the model list need

__all__ = ["THINK", "bearer", "check_caller"]


def check_caller(header: str | None, authorizer: Authorizer, scope: Scope = THINK) -> Principal:
    """The principal of the request, or the 401/403 for one that may not go on."""
    token = bearer(header)
    try:
        return authorizer.authorize(token, scope, f"the HTTP edge ({scope.value})")
    except PermissionDenied as exc:
        raise forbidden(exc.scope.value) from None
    except Unauthenticated:
        if token is None:
            raise unauthorized("missing bearer token: send Authorization: Bearer <token>") from None
        raise unauthorized("invalid bearer token") from None
