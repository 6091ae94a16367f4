"""Authentication (bearer tokens with names and scopes) and transport security (TLS, mutual TLS).

Settings come from the environment, the same for every service and client:

* ``UNIWIZARD_TOKEN`` or ``UNIWIZARD_TOKEN_FILE`` — the bearer token this process sends
  (``authorization: Bearer <token>``). A server also accepts it as ``default``, with every
  scope: it is the token our services present to each other.
* ``UNIWIZARD_TOKENS_FILE`` — servers only: named tokens (as hashes) with their scopes and
  budgets (``uniwizard.tokens``). Servers require a token on every call except the standard
  health service (left open for orchestrators), and the scope the method needs
  (``uniwizard.scopes``); the check itself is ``uniwizard.auth``.
* ``UNIWIZARD_TLS_CERT`` + ``UNIWIZARD_TLS_KEY`` — this process's certificate and key (PEM). A
  server with them serves TLS only; a client presents them (mutual TLS).
* ``UNIWIZARD_TLS_CA`` — the CA that signs our certificates. Clients verify servers with it;
  a server with it *requires* client certificates signed by it (mutual TLS).
* ``UNIWIZARD_ALLOW_INSECURE=1`` — allow listening on a non-loopback address with neither a
  token nor TLS (otherwise a service refuses to start).

No token and no token hash is ever logged: a refused call logs the method, and the principal's
name and the scope when the token was known.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from uniwizard import tokens
from uniwizard.auth import (
    CLIENT_METADATA,
    Authorizer,
    PermissionDenied,
    Principal,
    Scope,
    Unauthenticated,
    bearer,
    client_name,
    current_principal,
    set_current_principal,
)
from uniwizard.scopes import OPEN_PREFIX, Unlisted, required_scope, short_name

log = logging.getLogger(__name__)


class SecurityError(Exception):
    """Security settings that cannot be used; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Security:
    token: str | None = None
    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    allow_insecure: bool = False

    @property
    def tls(self) -> bool:
        return self.cert is not None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if self.cert is None or self.key is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.ca,
            require_client_auth=self.ca is not None,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if self.ca is None and self.cert is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _read(var: str, env: dict[str, str] | os._Environ[str]) -> bytes | None:
    path = env.get(var)
    if not path:
        return None
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise SecurityError(f"{var}={path}: cannot read ({exc.strerror})") from None
    if not data.strip():
        raise SecurityError(f"{var}={path}: the file is empty")
    return data


def load_security(env: dict[str, str] | os._Environ[str] | None = None) -> Security:
    env = os.environ if env is None else env
    token = env.get("UNIWIZARD_TOKEN") or None
    token_file = _read("UNIWIZARD_TOKEN_FILE", env)
    if token is None and token_file is not None:
        token = token_file.decode("utf-8", "replace").strip()
    if token is not None:
        try:
            tokens.check_token(token)
        except ValueError as exc:
            raise SecurityError(str(exc)) from None
    cert, key, ca = (
        _read(v, env) for v in ("UNIWIZARD_TLS_CERT", "UNIWIZARD_TLS_KEY", "UNIWIZARD_TLS_CA")
    )
    if (cert is None) != (key is None):
        raise SecurityError("UNIWIZARD_TLS_CERT and UNIWIZARD_TLS_KEY must be set together")
    return Security(
        token=token,
        cert=cert,
        key=key,
        ca=ca,
        allow_insecure=env.get("UNIWIZARD_ALLOW_INSECURE") == "1",
    )


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(address: str, security: Security) -> None:
    """Refuse to expose a service on the network without a token or TLS, unless told to."""
    if is_loopback(address) or security.token or security.tls or security.allow_insecure:
        return
    raise SecurityError(
        f"refusing to listen on {address} with neither a token nor TLS: set UNIWIZARD_TOKEN "
        "(and/or UNIWIZARD_TLS_CERT/KEY), or UNIWIZARD_ALLOW_INSECURE=1 if that is really fine"
    )


# -- server side --------------------------------------------------------------------------------


def load_authorizer(
    env: dict[str, str] | os._Environ[str] | None = None, security: Security | None = None
) -> Authorizer:
    """Who may call this server: ``UNIWIZARD_TOKENS_FILE`` (named tokens with scopes, see
    ``uniwizard.tokens``) and ``UNIWIZARD_TOKEN`` (``default``, every scope: the token the
    services present to each other); neither: no check. Raises SecurityError or ConfigError
    naming the setting or the file."""
    env = os.environ if env is None else env
    security = security or load_security(env)
    path = env.get("UNIWIZARD_TOKENS_FILE")
    if not path:
        if security.token is None:
            return Authorizer()
        fixed = tokens.table([], security.token)
        return Authorizer(lambda: fixed)
    if security.token is None:
        raise SecurityError(
            "UNIWIZARD_TOKENS_FILE needs UNIWIZARD_TOKEN (or UNIWIZARD_TOKEN_FILE) as well: it is"
            " the token the services present to each other ('default', every scope)"
        )
    try:
        return Authorizer(tokens.TokenFile(path, security.token))
    except ValueError as exc:
        raise SecurityError(f"UNIWIZARD_TOKENS_FILE={path}: {exc}") from None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Every call but health checks: the bearer token must be known (else UNAUTHENTICATED) and
    its principal must hold the scope the method needs (``uniwizard.scopes``; else
    PERMISSION_DENIED naming the scope). A refused call never reaches its handler. An accepted
    call's principal is set for the call's task, where the servicer reads it
    (``uniwizard.auth.current_principal``): gRPC aio runs a call's interceptors and its handler
    in one task of its own. A refusal is logged with the method, the principal's name and the
    scope, never the token or its hash."""

    def __init__(self, authorizer: Authorizer):
        self.authorizer = authorizer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method or ""
        if method.startswith(OPEN_PREFIX):
            return await continuation(details)
        presented = None
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                presented = bearer(value)
        try:
            principal = self.authorizer.authorize(presented, None)
        except Unauthenticated as exc:
            log.warning(
                "rejected %s: %s bearer token", method, "invalid" if presented else "missing"
            )
            return _rejecting(await continuation(details), grpc.StatusCode.UNAUTHENTICATED, exc)
        try:
            scope = required_scope(method)
            if scope is not None and not principal.may(scope):
                raise PermissionDenied(principal, scope, short_name(method))
        except (PermissionDenied, Unlisted) as exc:
            handler = await continuation(details)
            if handler is None:  # no such method: UNIMPLEMENTED, as for anyone
                return handler
            log.warning("refused %s: %s", method, exc)
            return _rejecting(handler, grpc.StatusCode.PERMISSION_DENIED, exc)
        set_current_principal(principal)
        return await continuation(details)


def calling_client(metadata: Any) -> str:
    """The name of the client the call being served is made for: the caller's own principal's,
    or the one a ``service`` principal names in ``x-uniwizard-client`` (the router, acting for
    the client that called it). ``metadata``: the call's invocation metadata. Raises ValueError
    naming the header when a believed name is not a valid one."""
    claimed = None
    for key, value in metadata or ():
        if key == CLIENT_METADATA:
            claimed = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
    return client_name(current_principal(), claimed)


def sees_everyone(principal: Principal) -> bool:
    """Whether ``principal`` may read every client's figures, not only its own."""
    return principal.may(Scope.ADMIN) or principal.is_service


def _rejecting(
    handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, error: Exception
) -> grpc.RpcMethodHandler:
    message = str(error)

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(unary)
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(
            stream, request_deserializer=des, response_serializer=ser
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            unary, request_deserializer=des, response_serializer=ser
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=des, response_serializer=ser
        )
    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=des, response_serializer=ser
    )


# -- client side ---------------------------------------------------------------------------------


class _TokenDetails:
    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self._metadata = metadata

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        md = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, md, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor under ONE call type, so each type gets its own class.
class _AddTokenUnary(_TokenDetails, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)


class _AddTokenStream(_TokenDetails, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)


def client_interceptors(security: Security) -> list[Any]:
    if not security.token:
        return []
    return [_AddTokenUnary(security.metadata()), _AddTokenStream(security.metadata())]


class _AddTokenSync(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return _SyncDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)


@dataclass(frozen=True)
class _SyncDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def sync_channel(
    target: str, options: list[tuple[str, Any]] | None = None, security: Security | None = None
) -> grpc.Channel:
    """A blocking channel (the CLI) with this process's TLS and token settings."""
    security = security or load_security()
    creds = security.channel_credentials()
    channel = (
        grpc.secure_channel(target, creds, options=options)
        if creds is not None
        else grpc.insecure_channel(target, options=options)
    )
    if security.token:
        channel = grpc.intercept_channel(channel, _AddTokenSync(security.metadata()))
    return channel
