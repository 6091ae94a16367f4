"""Who may use the edge: the one check every route but ``/health`` makes.

Today the stack has one shared token (``UNIWIZARD_TOKEN[_FILE]``, ``uniwizard.security``): with
one configured, a request must carry ``Authorization: Bearer <token>`` (compared in constant
time), else 401; with none, the edge is open, like the gRPC services. Scoped tokens replace the
comparison in :func:`check_caller` with ``authorize(token, scope)``, and a token lacking the
scope becomes :func:`edge_svc.errors.forbidden` (403).
"""

from __future__ import annotations

import hmac

from edge_svc.errors import unauthorized
from uniwizard.security import Security

THINK = "think"  # the scope chat completions and the model list need


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def check_caller(header: str | None, security: Security, scope: str = THINK) -> None:
    """Raise the 401 for a request that may not go on (``scope``: what the route needs)."""
    expected = security.token
    if expected is None:
        return
    presented = bearer(header)
    if presented is None:
        raise unauthorized("missing bearer token: send Authorization: Bearer <token>")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise unauthorized("invalid bearer token")
