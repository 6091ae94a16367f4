"""The client side of an in-process call: a ``grpc.aio.Channel`` whose calls run a
:class:`~uniwizard.inproc.server.LocalServer`'s handlers directly.

The generated stubs only call ``channel.unary_unary(...)`` and its three siblings and then call
what they return, so a stub built on an :class:`InProcessChannel` works unchanged, for every RPC
of every service, present and future. The call objects behave as grpc.aio's do:

* ``await call`` gives the response or raises ``grpc.aio.AioRpcError`` with the server's code,
  details and trailing metadata (so a typed failure in ``grpc-status-details-bin`` survives);
* a response stream is read with ``async for`` or ``read()`` (``EOF`` at its end);
* ``call.cancel()``, or cancelling the task that awaits or reads the call, cancels the handler's
  task; awaiting a cancelled call raises ``asyncio.CancelledError``;
* the channel's client interceptors run around the call as grpc.aio runs them (the OpenTelemetry
  client span, so a trace reads the same whichever way the call went).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import Any

import grpc
import grpc.aio

from uniwizard.inproc.server import EOF, OK, LocalServer, Pipe, Status, as_metadata

UNARY_UNARY, UNARY_STREAM, STREAM_UNARY, STREAM_STREAM = "uu", "us", "su", "ss"
_INTERCEPTOR_TYPES: dict[str, type] = {
    UNARY_UNARY: grpc.aio.UnaryUnaryClientInterceptor,
    UNARY_STREAM: grpc.aio.UnaryStreamClientInterceptor,
    STREAM_UNARY: grpc.aio.StreamUnaryClientInterceptor,
    STREAM_STREAM: grpc.aio.StreamStreamClientInterceptor,
}
_INTERCEPT_METHOD = {
    UNARY_UNARY: "intercept_unary_unary",
    UNARY_STREAM: "intercept_unary_stream",
    STREAM_UNARY: "intercept_stream_unary",
    STREAM_STREAM: "intercept_stream_stream",
}


def rpc_error(status: Status, method: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
        f"in-process call {method}: {status.code.name}",
    )


CANCELLED = Status(grpc.StatusCode.CANCELLED, "Locally cancelled by application!")


class InProcessChannel(grpc.aio.Channel):
    """A channel to ``server`` in this process; ``client`` names the calling service (its
    telemetry and the servicer's ``peer()``)."""

    def __init__(
        self,
        server: LocalServer,
        client: str,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        self.server = server
        self.client = client
        self._interceptors = {
            shape: tuple(i for i in interceptors if isinstance(i, kind))
            for shape, kind in _INTERCEPTOR_TYPES.items()
        }
        self._closed = False
        self._calls: set[asyncio.Task[Status]] = set()  # in flight, for close()

    def __repr__(self) -> str:
        return f"InProcessChannel({self.server.name!r}, client={self.client!r})"

    # -- what the stubs use ---------------------------------------------------------------

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _MultiCallable(self, method, UNARY_UNARY)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _MultiCallable(self, method, UNARY_STREAM)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _MultiCallable(self, method, STREAM_UNARY)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _MultiCallable(self, method, STREAM_STREAM)

    # -- the rest of grpc.aio.Channel -----------------------------------------------------

    async def close(self, grace: float | None = None) -> None:
        """No new calls; calls in flight get ``grace`` seconds, then are cancelled."""
        self._closed = True
        calls = [t for t in self._calls if not t.done()]
        if calls and grace:
            await asyncio.wait(calls, timeout=grace)
        for task in calls:
            task.cancel()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        if self._closed:
            return grpc.ChannelConnectivity.SHUTDOWN
        if self.server.serving:
            return grpc.ChannelConnectivity.READY
        return grpc.ChannelConnectivity.TRANSIENT_FAILURE

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        if self.get_state() == last_observed_state:
            await self.server.wait_changed()

    async def channel_ready(self) -> None:
        if self._closed:
            raise grpc.aio.UsageError("Channel is closed.")
        await self.server.wait_serving()

    async def __aenter__(self) -> InProcessChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(None)

    # -- starting a call ------------------------------------------------------------------

    def _start(self, shape: str, details: grpc.aio.ClientCallDetails, request: Any) -> _Call:
        if self._closed:
            raise grpc.aio.UsageError("Channel is closed.")
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        requests: Pipe | None = None
        feeder: asyncio.Task[None] | None = None
        if shape in (STREAM_UNARY, STREAM_STREAM):
            requests = Pipe()
            if request is not None:
                feeder = asyncio.get_running_loop().create_task(_feed(request, requests))
        responses = Pipe() if shape in (UNARY_STREAM, STREAM_STREAM) else None
        task, context = self.server.call(
            method,
            requests if requests is not None else request,
            timeout=details.timeout,
            metadata=as_metadata(details.metadata),
            wait_for_ready=bool(details.wait_for_ready),
            client=self.client,
            responses=responses,
        )
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return _CALL_TYPES[shape](self, method, task, context, requests, responses, feeder)


async def _feed(request_iterator: Any, pipe: Pipe) -> None:
    """A request iterator (sync or async) into the request stream, then its end."""
    try:
        if hasattr(request_iterator, "__aiter__"):
            async for message in request_iterator:
                if not await pipe.put(message):
                    return
        else:
            for message in request_iterator:
                if not await pipe.put(message):
                    return
    finally:
        pipe.end(OK)


class _MultiCallable:
    """What ``channel.unary_unary(method)`` (and the others) return: call it to start a call."""

    def __init__(self, channel: InProcessChannel, method: str, shape: str) -> None:
        self._channel = channel
        self._method = method
        self._shape = shape

    def __call__(
        self,
        request: Any = None,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        details = grpc.aio.ClientCallDetails(
            self._method, timeout, metadata, credentials, wait_for_ready
        )
        interceptors = self._channel._interceptors[self._shape]
        if not interceptors:
            return self._channel._start(self._shape, details, request)
        intercepted = _INTERCEPTED_TYPES[self._shape]
        return intercepted(self._channel, self._shape, interceptors, details, request)


# -- the call objects -------------------------------------------------------------------------


class _Call:
    """One in-process call, client side: the server's task, and the pipes of stream shapes."""

    def __init__(
        self,
        channel: InProcessChannel,
        method: str,
        task: asyncio.Task[Status],
        context: Any,
        requests: Pipe | None,
        responses: Pipe | None,
        feeder: asyncio.Task[None] | None,
    ) -> None:
        self.task = task
        self._method = method
        self._context = context
        self._requests = requests
        self._responses = responses
        self._feeder = feeder
        if feeder is not None:
            task.add_done_callback(lambda _: feeder.cancel())

    # RpcContext
    def cancelled(self) -> bool:
        return self.task.cancelled()

    def done(self) -> bool:
        return self.task.done()

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()  # type: ignore[no-any-return]

    def cancel(self) -> bool:
        if self.task.done():
            return False
        return self.task.cancel()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self.task.add_done_callback(lambda _: callback(self))

    # Call
    async def _status(self) -> Status:
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled():
                return CANCELLED
            raise

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*(await self._status()).trailing_metadata)

    async def code(self) -> grpc.StatusCode:
        return (await self._status()).code

    async def details(self) -> str:
        return (await self._status()).details

    async def wait_for_connection(self) -> None:
        pass  # nothing to connect

    # a unary answer
    def _response(self) -> Generator[Any, None, Any]:
        status = yield from self.task.__await__()  # a cancelled awaiter cancels the call
        if status.code is grpc.StatusCode.OK:
            return status.response
        raise rpc_error(status, self._method)

    # a response stream
    async def read(self) -> Any:
        assert self._responses is not None
        try:
            more, item = await self._responses.get()
        except asyncio.CancelledError:
            self.cancel()  # as grpc.aio: a cancelled reader cancels the call
            raise
        if more:
            return item
        if item is None:
            raise asyncio.CancelledError()
        if item.code is grpc.StatusCode.OK:
            return EOF
        raise rpc_error(item, self._method)

    async def _messages(self) -> AsyncIterator[Any]:
        while (message := await self.read()) is not EOF:
            yield message

    # a request stream written by the client
    async def write(self, request: Any) -> None:
        if self._requests is None or self._feeder is not None:
            raise grpc.aio.UsageError("write() is for a request stream without an iterator")
        if not await self._requests.put(request):
            status = await self._status()
            raise rpc_error(status, self._method)

    async def done_writing(self) -> None:
        if self._requests is None or self._feeder is not None:
            raise grpc.aio.UsageError("done_writing() is for a request stream without an iterator")
        self._requests.end(OK)


class _UnaryUnaryCall(_Call, grpc.aio.UnaryUnaryCall):  # type: ignore[misc]
    def __await__(self) -> Generator[Any, None, Any]:
        return self._response()


class _StreamUnaryCall(_Call, grpc.aio.StreamUnaryCall):  # type: ignore[misc]
    def __await__(self) -> Generator[Any, None, Any]:
        return self._response()


class _UnaryStreamCall(_Call, grpc.aio.UnaryStreamCall):  # type: ignore[misc]
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()


class _StreamStreamCall(_Call, grpc.aio.StreamStreamCall):  # type: ignore[misc]
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()


_CALL_TYPES: dict[str, type[_Call]] = {
    UNARY_UNARY: _UnaryUnaryCall,
    UNARY_STREAM: _UnaryStreamCall,
    STREAM_UNARY: _StreamUnaryCall,
    STREAM_STREAM: _StreamStreamCall,
}


# -- client interceptors ----------------------------------------------------------------------


class _Intercepted:
    """A call made through the channel's client interceptors, as grpc.aio makes it: the chain
    runs in a task (in the caller's context, so a client span has the right parent); each
    interceptor's continuation starts the next one, the last starts the call itself. An
    interceptor may return the call, a response (unary) or a response iterator (streams)."""

    def __init__(
        self,
        channel: InProcessChannel,
        shape: str,
        interceptors: tuple[Any, ...],
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> None:
        self._channel = channel
        self._shape = shape
        self._interceptors = interceptors
        self._method = details.method
        self.inner: _Call | None = None  # the call the last continuation started
        self._it: AsyncIterator[Any] | None = None
        self._chain = asyncio.get_running_loop().create_task(self._step(0, details, request))

    async def _step(self, i: int, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        if i == len(self._interceptors):
            self.inner = self._channel._start(self._shape, details, request)
            return self.inner

        async def continuation(d: grpc.aio.ClientCallDetails, r: Any) -> Any:
            return await self._step(i + 1, d, r)

        return await getattr(self._interceptors[i], _INTERCEPT_METHOD[self._shape])(
            continuation, details, request
        )

    def cancelled(self) -> bool:
        return self._chain.cancelled() or (self.inner is not None and self.inner.cancelled())

    def done(self) -> bool:
        return self._chain.cancelled() or (self.inner is not None and self.inner.done())

    def time_remaining(self) -> float | None:
        return self.inner.time_remaining() if self.inner is not None else None

    def cancel(self) -> bool:
        cancelled = self._chain.cancel() if not self._chain.done() else False
        if self.inner is not None:
            cancelled = self.inner.cancel() or cancelled
        return cancelled

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        def when_chained(chain: asyncio.Task[Any]) -> None:
            if self.inner is None:
                callback(self)
            else:
                self.inner.add_done_callback(lambda _: callback(self))

        self._chain.add_done_callback(when_chained)

    async def _outer(self) -> Any:
        return await asyncio.shield(self._chain)

    async def _final(self) -> Status:
        try:
            await self._outer()
        except grpc.aio.AioRpcError as exc:
            return Status(exc.code(), exc.details() or "")
        except asyncio.CancelledError:
            if self._chain.cancelled():
                return CANCELLED
            raise
        assert self.inner is not None
        return await self.inner._status()

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*(await self._final()).trailing_metadata)

    async def code(self) -> grpc.StatusCode:
        return (await self._final()).code

    async def details(self) -> str:
        return (await self._final()).details

    async def wait_for_connection(self) -> None:
        pass

    def _response(self) -> Generator[Any, None, Any]:
        try:
            out = yield from self._chain.__await__()
            if isinstance(out, grpc.aio.UnaryUnaryCall | grpc.aio.StreamUnaryCall):
                return (yield from out.__await__())
            return out  # an interceptor answered with the response itself
        except asyncio.CancelledError:
            self.cancel()
            raise

    async def _stream(self) -> Any:
        return await self._chain

    async def read(self) -> Any:
        try:
            out = await self._stream()
            if hasattr(out, "read"):
                return await out.read()
            try:
                return await anext(self._iterator(out))
            except StopAsyncIteration:
                return EOF
        except asyncio.CancelledError:
            self.cancel()
            raise

    def _iterator(self, out: Any) -> AsyncIterator[Any]:
        if self._it is None:
            self._it = aiter(out)
        return self._it

    async def _messages(self) -> AsyncIterator[Any]:
        while (message := await self.read()) is not EOF:
            yield message

    async def write(self, request: Any) -> None:
        await self._stream()
        assert self.inner is not None
        await self.inner.write(request)

    async def done_writing(self) -> None:
        await self._stream()
        assert self.inner is not None
        await self.inner.done_writing()


class _InterceptedUnaryUnary(_Intercepted, grpc.aio.UnaryUnaryCall):  # type: ignore[misc]
    def __await__(self) -> Generator[Any, None, Any]:
        return self._response()


class _InterceptedStreamUnary(_Intercepted, grpc.aio.StreamUnaryCall):  # type: ignore[misc]
    def __await__(self) -> Generator[Any, None, Any]:
        return self._response()


class _InterceptedUnaryStream(_Intercepted, grpc.aio.UnaryStreamCall):  # type: ignore[misc]
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()


class _InterceptedStreamStream(_Intercepted, grpc.aio.StreamStreamCall):  # type: ignore[misc]
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()


_INTERCEPTED_TYPES: dict[str, type[_Intercepted]] = {
    UNARY_UNARY: _InterceptedUnaryUnary,
    UNARY_STREAM: _InterceptedUnaryStream,
    STREAM_UNARY: _InterceptedStreamUnary,
    STREAM_STREAM: _InterceptedStreamStream,
}
