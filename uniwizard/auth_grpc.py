"""The gRPC server side of who is calling (``uniwizard.auth``): which tokens a server accepts,
the interceptor that checks every call's token and scope, and the client a call is made for.

No token and no token hash is ever logged: a refused call logs the method, and the principal's
name and the scope when the token was known.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from uniwizard import tokens
from uniwizard.auth import (
    CLIENT_METADATA,
    IN_PROCESS,
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
from uniwizard.security import Security, SecurityError, load_security

log = logging.getLogger(__name__)


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


class InProcessPrincipal(grpc.aio.ServerInterceptor):
    """For calls from this process (``uniwizard.inproc``), which have no token to check: the
    principal is the service itself (:data:`uniwizard.auth.IN_PROCESS`, every scope), so the
    router's ``x-uniwizard-client`` is believed as from a service token over the network."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        set_current_principal(IN_PROCESS)
        return await continuation(details)


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
