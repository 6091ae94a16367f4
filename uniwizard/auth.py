"""Who is calling and what they may do: principals, scopes, and the one check every entry point
makes, gRPC and HTTP alike.

A bearer token is looked up among the known tokens by its SHA-256 digest; every known digest is
compared with :func:`hmac.compare_digest` (no early exit), so neither the time taken nor the
answer tells anything about a token that does not match. Only digests are held in memory; a
token is never stored, logged or put in a message.

    authorizer.authorize(bearer(header), Scope.THINK) -> Principal
        raises Unauthenticated (no token, or one that is not known)
        raises PermissionDenied (a known token without the scope; the message names the scope)

A :class:`Principal` is a name (what the ledger, the spans and ``uniwizard usage --by caller``
show), its scopes and an optional spending budget. The scopes:

* ``route`` — ask which backend would take a task (``Route``).
* ``think`` — have a task answered (``Dispatch``, ``DispatchStream``, ``Rate``; the HTTP edge).
* ``admin`` — operator control (``SetEnabled``, ``Reload``).
* ``service`` — what only our own services do to each other (one attempt on a named backend,
  outcome reports, half-open trials); a ``service`` principal may also name the client it acts
  for (:data:`CLIENT_METADATA`), see :func:`client_name`.

Which RPC needs which scope is :mod:`uniwizard.scopes`. With no token configured at all, every
call is :data:`ANONYMOUS` (every scope, no name), as it was before tokens had names.
"""

from __future__ import annotations

import contextvars
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from uniwizard.config_types import Budget

__all__ = [
    "ALL_SCOPES",
    "ANONYMOUS",
    "CLIENT_METADATA",
    "DEFAULT_NAME",
    "IN_PROCESS",
    "NAME_RE",
    "AuthError",
    "Authorizer",
    "PermissionDenied",
    "Principal",
    "Scope",
    "TokenTable",
    "Unauthenticated",
    "bearer",
    "checked_name",
    "client_name",
    "current_principal",
    "digest",
    "set_current_principal",
]

# The gRPC metadata key that carries the name of the client a service acts for (the router sets
# it on its calls to the caller). Only a principal with the ``service`` scope is believed.
CLIENT_METADATA = "x-uniwizard-client"
DEFAULT_NAME = "default"  # the principal of the all-scope UNIWIZARD_TOKEN
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Scope(enum.StrEnum):
    ROUTE = "route"
    THINK = "think"
    ADMIN = "admin"
    SERVICE = "service"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a name (never the token), what it may do, and what it may spend."""

    name: str
    scopes: frozenset[Scope]
    budget: Budget | None = None

    def may(self, scope: Scope | None) -> bool:
        """Whether this principal may make a call that needs ``scope`` (None: any token)."""
        return scope is None or scope in self.scopes

    @property
    def is_service(self) -> bool:
        """One of our services (or a peer trusted like one): may name the client it acts for."""
        return Scope.SERVICE in self.scopes


ANONYMOUS = Principal("", ALL_SCOPES)  # no token configured: nothing is checked
IN_PROCESS = Principal("", ALL_SCOPES)  # a call from a component in this same process


class AuthError(Exception):
    """A refused call; ``str()`` is safe to send back and to log (no token, no digest)."""


class Unauthenticated(AuthError):
    """No bearer token, or one that is not known (gRPC UNAUTHENTICATED, HTTP 401)."""


class PermissionDenied(AuthError):
    """A known token without the scope the call needs (gRPC PERMISSION_DENIED, HTTP 403)."""

    def __init__(self, principal: Principal, scope: Scope, what: str = "") -> None:
        self.principal, self.scope = principal, scope
        call = f" for {what}" if what else ""
        super().__init__(
            f"token {principal.name!r} lacks the {scope.value!r} scope needed{call}"
            f" (it has: {', '.join(sorted(principal.scopes)) or 'none'})"
        )


def digest(token: str) -> bytes:
    """The SHA-256 digest of a token: what is kept of it."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class TokenTable:
    """Known token digests and the principal each one stands for."""

    entries: tuple[tuple[bytes, Principal], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[bytes, Principal]]) -> TokenTable:
        return cls(tuple(pairs))

    def find(self, token: str) -> Principal | None:
        """The principal of ``token``, comparing against every entry in constant time."""
        presented = digest(token)
        found: Principal | None = None
        for known, principal in self.entries:
            if hmac.compare_digest(known, presented):
                found = principal
        return found

    def by_name(self, name: str) -> Principal | None:
        for _, principal in self.entries:
            if principal.name == name:
                return principal
        return None


MISSING = "missing or invalid bearer token (set UNIWIZARD_TOKEN)"


class Authorizer:
    """The check: a presented token and the scope a call needs, to a principal or a refusal.

    ``table`` gives the current tokens (a file that changes on disk is re-read by it, see
    :class:`uniwizard.tokens.TokenFile`); None means no token is configured: every call is
    :data:`ANONYMOUS`. Pure: no I/O of its own.
    """

    def __init__(self, table: Callable[[], TokenTable] | None = None) -> None:
        self._table = table

    @property
    def enabled(self) -> bool:
        return self._table is not None

    def authorize(self, presented: str | None, scope: Scope | None, what: str = "") -> Principal:
        """The principal of ``presented`` (a bearer token, see :func:`bearer`) if it may make
        a call that needs ``scope`` (None: any valid token); ``what`` names the call in the
        refusal. Raises :class:`Unauthenticated` or :class:`PermissionDenied`."""
        if self._table is None:
            return ANONYMOUS
        principal = self._table().find(presented) if presented else None
        if principal is None:
            raise Unauthenticated(MISSING)
        if scope is not None and not principal.may(scope):
            raise PermissionDenied(principal, scope, what)
        return principal

    def budget_of(self, name: str) -> Budget | None:
        """The spending budget of the token named ``name``, if it has one."""
        if self._table is None or not name:
            return None
        principal = self._table().by_name(name)
        return principal.budget if principal is not None else None


def bearer(header: str | bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (the scheme in any case), or
    None when there is none."""
    if header is None:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, token = text.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def client_name(principal: Principal, claimed: str | None) -> str:
    """The name that goes into the ledger row and the spans: the principal's own, or, from a
    ``service`` principal only, the client it says it acts for. Raises ValueError naming the
    problem when a believed claim is not a valid name."""
    if not claimed or not principal.is_service:
        return principal.name
    return checked_name(claimed, CLIENT_METADATA)


def checked_name(name: str, what: str) -> str:
    """``name`` if it could be a token's name (:data:`NAME_RE`); else ValueError naming
    ``what`` (the header or argument that carried it)."""
    if not NAME_RE.match(name):
        raise ValueError(
            f"{what}: {name[:70]!r} is not a client name (letters, digits, '_', '.', '@', '-';"
            " at most 64)"
        )
    return name


# -- the principal of the call being served ----------------------------------------------------

_CURRENT: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "uniwizard_principal", default=ANONYMOUS
)


def set_current_principal(principal: Principal) -> None:
    """Called by the server's auth interceptor, in the call's own task (gRPC aio serves each
    call in a task of its own, interceptors included): the servicer then reads it."""
    _CURRENT.set(principal)


def current_principal() -> Principal:
    """The principal of the call this task serves (:data:`ANONYMOUS` with no auth)."""
    return _CURRENT.get()
