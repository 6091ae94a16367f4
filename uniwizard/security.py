"""Authentication (bearer tokens with names and scopes) and transport security (TLS, mutual TLS).

Settings come from the environment, the same for every service and client:

* ``UNIWIZARD_TOKEN`` or ``UNIWIZARD_TOKEN_FILE`` — the bearer token this process sends
  (``authorization: Bearer <token>``). A server also accepts it as ``default``, with every
  scope: it is the token our services present to each other.
* ``UNIWIZARD_TOKENS_FILE`` — servers only: named tokens (as hashes) with their scopes and
  budgets (``uniwizard.tokens``). Servers require a token on every call except the standard
  health service (left open for orchestrators), and the scope the method needs
  (``uniwizard.scopes``); the check itself is ``uniwizard.auth``, its gRPC server side
  ``uniwizard.auth_grpc``.
* ``UNIWIZARD_TLS_CERT`` + ``UNIWIZARD_TLS_KEY`` — this process's certificate and key (PEM). A
  server with them serves TLS only; a client presents them (mutual TLS).
* ``UNIWIZARD_TLS_CA`` — the CA that signs our certificates. Clients verify servers with it;
  a server with it *requires* client certificates signed by it (mutual TLS).
* ``UNIWIZARD_ALLOW_INSECURE=1`` — allow listening on a non-loopback address with neither a
  token nor TLS (otherwise a service refuses to start).

No token and no token hash is ever logged.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any

import grpc

from uniwizard import tokens

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
