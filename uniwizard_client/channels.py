"""Client channels to the stack's services: the one place a client channel is built.

An :class:`Endpoint` is one service's target with this process's security settings (TLS from
``UNIWIZARD_TLS_*``, the bearer token from ``UNIWIZARD_TOKEN[_FILE]``, unless given). The target
may name several replicas (``dns:///router:50052``, ``ADDR:PORT,ADDR:PORT``; see
``uniwizard.balancing``): calls go round robin to those that are up and SERVING. A
:class:`SyncConnection` / :class:`AsyncConnection` opens the channel lazily, sends the token and
the W3C trace context with every call, and turns every failed call into a typed
:class:`~uniwizard_client.errors.RouterError`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from opentelemetry.context import Context

from uniwizard.balancing import normalize_target
from uniwizard.net import address, channel_options
from uniwizard.security import load_security
from uniwizard_client.errors import RouterError, from_rpc_error
from uniwizard_client.tracing import Metadata, call_metadata

StubT = TypeVar("StubT")


@dataclass(frozen=True)
class Endpoint:
    """Where one service is (its replicas) and how to talk to it."""

    service: str  # registry, router, caller
    target: str
    token: str | None = None
    credentials: grpc.ChannelCredentials | None = None

    @classmethod
    def resolve(
        cls,
        service: str,
        target: str | None = None,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> Endpoint:
        """``target`` defaults to ``UNIWIZARD_<SERVICE>_ADDR``; an unset token or credentials to
        the process's settings. Raises ``uniwizard.security.SecurityError`` on unusable
        settings and ``uniwizard.balancing.BalancingError`` on a target that is not one (each
        naming the variable or argument)."""
        if target:
            target = normalize_target(target, f"{service} target")
        else:
            target = normalize_target(address(service), f"UNIWIZARD_{service.upper()}_ADDR")
        security = load_security()
        return cls(
            service=service,
            target=target,
            token=token if token is not None else security.token,
            credentials=credentials or security.channel_credentials(),
        )

    def channel(self) -> grpc.Channel:
        options = channel_options(self.service)
        if self.credentials is not None:
            return grpc.secure_channel(self.target, self.credentials, options=options)
        return grpc.insecure_channel(self.target, options=options)

    def aio_channel(self) -> grpc.aio.Channel:
        options = channel_options(self.service)
        if self.credentials is not None:
            return grpc.aio.secure_channel(self.target, self.credentials, options=options)
        return grpc.aio.insecure_channel(self.target, options=options)

    def metadata(self, context: Context | None = None, extra: Metadata = ()) -> Metadata:
        """The bearer token and the trace context (``context``, else the current one), then
        ``extra`` (e.g. the client a service acts for, see ``RouterBase.acting_for``)."""
        return call_metadata(self.token, context) + extra

    def error(self, exc: grpc.RpcError) -> RouterError:
        return from_rpc_error(exc, service=self.service, target=self.target)


class ServiceClient:
    """What every client object shares: one service's endpoint and a default deadline.

    ``target`` defaults to ``UNIWIZARD_<SERVICE>_ADDR``; ``token`` and ``credentials`` to the
    process's ``UNIWIZARD_TOKEN[_FILE]`` and ``UNIWIZARD_TLS_*`` settings."""

    service = ""  # registry, router, caller
    default_deadline = 10.0

    def __init__(
        self,
        target: str | None = None,
        *,
        deadline: float | None = None,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ):
        deadline = self.default_deadline if deadline is None else deadline
        if deadline <= 0:
            raise ValueError(f"deadline must be positive, got {deadline}")
        self.endpoint = Endpoint.resolve(self.service, target, token=token, credentials=credentials)
        self.deadline = deadline
        self._conn = self._connect()

    def _connect(self) -> Any:
        """The connection this client talks over (opened lazily, on first use)."""
        raise NotImplementedError

    @property
    def target(self) -> str:
        return self.endpoint.target

    @property
    def token(self) -> str | None:
        return self.endpoint.token

    @property
    def credentials(self) -> grpc.ChannelCredentials | None:
        return self.endpoint.credentials

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r}, deadline={self.deadline})"

    def _timeout(self, deadline: float | None) -> float:
        return self.deadline if deadline is None else deadline


class SyncConnection(Generic[StubT]):
    """One blocking channel to one service, opened on first use. Thread-safe."""

    def __init__(self, endpoint: Endpoint, stub: Callable[[grpc.Channel], StubT]):
        self.endpoint = endpoint
        self._make_stub = stub
        self._lock = threading.Lock()  # per connection: never shared between clients
        self._channel: grpc.Channel | None = None
        self._stub: StubT | None = None

    def stub(self) -> StubT:
        with self._lock:
            if self._stub is None:
                self._channel = self.endpoint.channel()
                self._stub = self._make_stub(self._channel)
            return self._stub

    def unary(
        self,
        method: str,
        request: Any,
        timeout: float,
        *,
        context: Context | None = None,
        metadata: Metadata = (),
    ) -> Any:
        """Call a unary RPC; a failure raises a ``RouterError``."""
        rpc = getattr(self.stub(), method)
        try:
            return rpc(request, timeout=timeout, metadata=self.endpoint.metadata(context, metadata))
        except grpc.RpcError as exc:
            raise self.endpoint.error(exc) from None

    def stream(
        self,
        method: str,
        request: Any,
        timeout: float,
        *,
        context: Context | None = None,
        metadata: Metadata = (),
    ) -> Generator[Any, None, None]:
        """The messages of a server-streaming RPC; a failure raises a ``RouterError``. Closing
        the generator early cancels the call."""
        call = getattr(self.stub(), method)(
            request, timeout=timeout, metadata=self.endpoint.metadata(context, metadata)
        )
        try:
            yield from call
        except grpc.RpcError as exc:
            raise self.endpoint.error(exc) from None
        finally:
            call.cancel()  # a no-op once the call has ended

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._stub = None


class AsyncConnection(Generic[StubT]):
    """One ``grpc.aio`` channel to one service, opened on first use in the running loop.

    ``channel``: a channel made elsewhere (e.g. an in-process channel to a service in this
    process) to use instead of opening one; whoever made it closes it, :meth:`close` does not.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        stub: Callable[[grpc.aio.Channel], StubT],
        channel: grpc.aio.Channel | None = None,
    ):
        self.endpoint = endpoint
        self._make_stub = stub
        self._given = channel
        self._channel: grpc.aio.Channel | None = None
        self._stub: StubT | None = None

    def stub(self) -> StubT:
        if self._stub is None:
            self._channel = self._given or self.endpoint.aio_channel()
            self._stub = self._make_stub(self._channel)
        return self._stub

    async def unary(
        self,
        method: str,
        request: Any,
        timeout: float,
        *,
        context: Context | None = None,
        metadata: Metadata = (),
    ) -> Any:
        rpc = getattr(self.stub(), method)
        try:
            return await rpc(
                request, timeout=timeout, metadata=self.endpoint.metadata(context, metadata)
            )
        except grpc.RpcError as exc:
            raise self.endpoint.error(exc) from None

    async def stream(
        self,
        method: str,
        request: Any,
        timeout: float,
        *,
        context: Context | None = None,
        metadata: Metadata = (),
    ) -> AsyncGenerator[Any, None]:
        """The messages of a server-streaming RPC; a failure raises a ``RouterError``. Closing
        the generator early (or cancelling the task consuming it) cancels the call."""
        call = getattr(self.stub(), method)(
            request, timeout=timeout, metadata=self.endpoint.metadata(context, metadata)
        )
        try:
            async for message in call:
                yield message
        except grpc.RpcError as exc:
            raise self.endpoint.error(exc) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        if self._channel is not None and self._channel is not self._given:
            await self._channel.close(None)
        self._channel = None
        self._stub = None
