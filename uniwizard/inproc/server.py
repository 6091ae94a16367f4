"""The server side of an in-process call: a service's handlers run as a network server runs them.

:class:`LocalServer` is the in-process face of one gRPC server. It holds what the network server
holds (the method handlers ``add_XServicer_to_server`` registers, and the server interceptors:
the bearer-token check, the OpenTelemetry server span) and runs one call the way grpc.aio does:

* the method handler is found through the interceptors (a missing method is UNIMPLEMENTED);
* the handler runs in a task of its own with an empty ``contextvars`` context, as on a server:
  nothing crosses from the client but the request and the metadata;
* a deadline is enforced here: at the deadline the handler is cancelled and the status is
  DEADLINE_EXCEEDED; ``time_remaining()`` counts down to it;
* ``context.abort(code, details, trailing_metadata)`` ends the call with exactly that status; an
  unexpected exception is UNKNOWN (``Unexpected <class>: message``), and is logged, as gRPC does;
* a server that is not serving (not started, or stopped) answers UNAVAILABLE; with
  ``wait_for_ready`` the call waits for it within its deadline instead;
* :meth:`LocalServer.stop` refuses new calls, lets calls in flight finish within the grace
  period, then cancels the rest (their clients see UNAVAILABLE).

Messages are handed over, not serialized: the handler receives the client's request object and
the client receives the handler's response objects. Neither side may change a message after it
has sent it (the services never do: every message is built for the one call).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

import grpc
import grpc.aio

log = logging.getLogger(__name__)

EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # (missing from grpc-stubs)
STREAM_WINDOW = 32  # messages a stream may run ahead of its reader (gRPC's flow control)


class Metadatum(NamedTuple):
    key: str
    value: str | bytes


Metadata = tuple[Metadatum, ...]


def as_metadata(pairs: Iterable[tuple[str, str | bytes]] | None) -> Metadata:
    return tuple(Metadatum(k, v) for k, v in pairs or ())


class HandlerCallDetails(NamedTuple):
    """What server interceptors see of a call (``grpc.HandlerCallDetails``)."""

    method: str
    invocation_metadata: Metadata


class Status(NamedTuple):
    """How a call ended; ``response`` is the answer of a unary call that succeeded."""

    code: grpc.StatusCode
    details: str = ""
    trailing_metadata: Metadata = ()
    response: Any = None


OK = Status(grpc.StatusCode.OK)


class Pipe:
    """Messages from one side of a call to the other, at most ``window`` waiting, then one end
    (a :class:`Status`, or None when the call was cancelled)."""

    def __init__(self, window: int = STREAM_WINDOW) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._window = window
        self._ended = False
        self._end: Status | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    @property
    def ended(self) -> bool:
        return self._ended

    async def put(self, item: Any) -> bool:
        """Queue ``item``; False when the pipe has ended (nobody will read it)."""
        while len(self._items) >= self._window and not self._ended:
            self._writable.clear()
            await self._writable.wait()
        if self._ended:
            return False
        self._items.append(item)
        self._readable.set()
        return True

    def end(self, end: Status | None) -> None:
        """The last thing a reader gets, after the queued messages (the first end counts)."""
        if not self._ended:
            self._ended, self._end = True, end
            self._readable.set()
            self._writable.set()

    async def get(self) -> tuple[bool, Any]:
        """(True, message), or (False, the end) once every queued message has been read."""
        while not self._items and not self._ended:
            self._readable.clear()
            await self._readable.wait()
        if self._items:
            item = self._items.popleft()
            self._writable.set()
            return True, item
        return False, self._end


class LocalServer:
    """One service's handlers and server interceptors, callable in-process (see the module doc).

    ``add_generic_rpc_handlers`` and ``add_registered_method_handlers`` are the two calls a
    generated ``add_XServicer_to_server`` makes; the owning host forwards them here as well as to
    its network server.
    """

    def __init__(self, name: str, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> None:
        self.name = name
        self.interceptors = tuple(interceptors)
        self._generic: list[grpc.GenericRpcHandler] = []
        self._registered: dict[str, grpc.RpcMethodHandler] = {}
        self._serving = asyncio.Event()
        self._changed = asyncio.Event()  # set (and replaced) whenever serving starts or stops
        self._stopped = False
        self._calls: set[asyncio.Task[Status]] = set()
        self._cancelling: set[asyncio.Task[Status]] = set()  # cancelled by stop(), not a client

    # -- what add_XServicer_to_server calls ----------------------------------------------------

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        for name, handler in handlers.items():
            self._registered[f"/{service}/{name}"] = handler

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self._serving.is_set()

    def start(self) -> None:
        if not self._stopped:
            self._serving.set()
            self._state_changed()

    async def wait_serving(self) -> None:
        await self._serving.wait()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def _state_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls; calls in flight get ``grace`` seconds, then are cancelled."""
        self._stopped = True
        self._serving.clear()
        self._state_changed()
        calls = set(self._calls)
        if calls and grace:
            await asyncio.wait(calls, timeout=grace)
        for task in calls:
            if not task.done():
                self._cancelling.add(task)
                task.cancel()
        if calls:
            await asyncio.wait(calls)

    # -- one call -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        request: Any,
        *,
        timeout: float | None,
        metadata: Metadata,
        wait_for_ready: bool,
        client: str,
        responses: Pipe | None,
    ) -> tuple[asyncio.Task[Status], ServicerContext]:
        """Start one call: a task that ends with its :class:`Status`. ``request`` is the message,
        or a :class:`Pipe` of messages for a request stream; response-stream messages go into
        ``responses``, which is ended with the status."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        context = ServicerContext(loop, deadline, metadata, client, request, responses)
        task = loop.create_task(
            self._serve(method, request, context, wait_for_ready),
            name=f"inproc {method}",
            context=contextvars.Context(),
        )
        context.task = task
        if deadline is not None:
            context.timer = loop.call_at(deadline, _expire, context)
        self._calls.add(task)
        task.add_done_callback(self._finished)
        return task, context

    def _finished(self, task: asyncio.Task[Status]) -> None:
        self._calls.discard(task)
        self._cancelling.discard(task)

    async def _serve(
        self, method: str, request: Any, context: ServicerContext, wait_for_ready: bool
    ) -> Status:
        try:
            status = await self._serve_call(method, request, context, wait_for_ready)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if context.expired and task is not None:  # the deadline, not the client
                task.uncancel()
                status = Status(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            elif task is not None and task in self._cancelling:  # the server stopped
                task.uncancel()
                status = Status(grpc.StatusCode.UNAVAILABLE, "the server stopped")
            else:  # the client cancelled
                context.end(None)
                raise
        return context.end(status)

    async def _serve_call(
        self, method: str, request: Any, context: ServicerContext, wait_for_ready: bool
    ) -> Status:
        if not self._serving.is_set():
            if not wait_for_ready:
                return Status(
                    grpc.StatusCode.UNAVAILABLE, f"in-process: {self.name} is not serving"
                )
            await self._serving.wait()
        handler = await self._handler(method, context.invocation_metadata())
        if handler is None:
            return Status(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        return await _run(handler, method, request, context)

    async def _handler(self, method: str, metadata: Metadata) -> grpc.RpcMethodHandler | None:
        details: Any = HandlerCallDetails(method, metadata)
        if not self.interceptors:
            return self._lookup(details)
        return await self._intercept(0, details)

    async def _intercept(
        self, i: int, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if i == len(self.interceptors):
            return self._lookup(details)

        async def continuation(d: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            return await self._intercept(i + 1, d)

        interceptor: Any = self.interceptors[i]
        return await interceptor.intercept_service(continuation, details)  # type: ignore[no-any-return]

    def _lookup(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._registered.get(details.method)
        if handler is not None:
            return handler
        for generic in self._generic:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None


def _expire(context: ServicerContext) -> None:
    """The call's deadline: its handler is cancelled (and the status is DEADLINE_EXCEEDED)."""
    if context.task is not None and not context.task.done():
        context.expired = True
        context.task.cancel()


async def _run(handler: Any, method: str, request: Any, context: ServicerContext) -> Status:
    """Run the handler's behaviour for the call's shape; its status."""
    try:
        if handler.request_streaming:
            request = _RequestStream(request)
        if handler.response_streaming:
            behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
            out = behavior(request, context)
            if hasattr(out, "__aiter__"):
                try:
                    async for message in out:
                        await context.write(message)
                finally:  # closed here, in the call's task, whatever ended it
                    if hasattr(out, "aclose"):
                        await out.aclose()
            elif inspect.isawaitable(out):
                await out  # a handler that writes with context.write()
            else:
                for message in out or ():
                    await context.write(message)
            return context.status()
        behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
        response = behavior(request, context)
        if inspect.isawaitable(response):
            response = await response
        status = context.status()
        if status.code is grpc.StatusCode.OK and response is None:
            status = Status(grpc.StatusCode.INTERNAL, "the handler returned no response")
        return status._replace(response=response)
    except grpc.aio.AbortError:
        return context.status()
    except Exception as exc:
        log.exception("Unexpected [%s] raised by servicer method [%s]", type(exc).__name__, method)
        return Status(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")


class _RequestStream:
    """A request stream as a handler reads it: ``async for`` over the client's messages."""

    def __init__(self, pipe: Pipe) -> None:
        self._pipe = pipe

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        more, item = await self._pipe.get()
        if not more:
            raise StopAsyncIteration
        return item


class ServicerContext(grpc.aio.ServicerContext):  # type: ignore[type-arg]
    """``grpc.aio.ServicerContext`` for one in-process call.

    The peer is ``unix:inproc:<client service>``: an in-process call has no network address, and
    the ``unix:`` scheme tells tools that parse IP peers (OpenTelemetry's server interceptor) not
    to try.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
        metadata: Metadata,
        client: str,
        request: Any,
        responses: Pipe | None,
    ) -> None:
        self.deadline = deadline
        self.task: asyncio.Task[Status] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.expired = False
        self._loop = loop
        self._metadata = metadata
        self._peer = f"unix:inproc:{client}"
        self._requests = request if isinstance(request, Pipe) else None
        self._responses = responses
        self._code = grpc.StatusCode.OK
        self._details = ""
        self._trailing: Metadata = ()
        self._done: list[Callable[[ServicerContext], None]] = []

    def status(self) -> Status:
        return Status(self._code, self._details, self._trailing)

    def end(self, status: Status | None) -> Status:
        """The call is over: a response stream gets its end; done-callbacks run."""
        if self.timer is not None:
            self.timer.cancel()
        if self._responses is not None:
            self._responses.end(status)
        callbacks, self._done = self._done, []
        for cb in callbacks:
            cb(self)
        return status if status is not None else Status(grpc.StatusCode.CANCELLED, "Cancelled")

    # -- messages --------------------------------------------------------------------------

    async def read(self) -> Any:
        if self._requests is None:
            raise grpc.aio.UsageError("read() is for a request stream")
        more, item = await self._requests.get()
        return item if more else EOF

    async def write(self, message: Any) -> None:
        if self._responses is None:
            raise grpc.aio.UsageError("write() is for a response stream")
        if not await self._responses.put(message):
            raise asyncio.CancelledError()  # the client is gone

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        pass  # in-process clients read no initial metadata

    # -- status ----------------------------------------------------------------------------

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Any = (),
    ) -> NoReturn:
        self._code, self._details = code, details
        self._trailing = as_metadata(trailing_metadata)
        raise grpc.aio.AbortError()

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailing = as_metadata(trailing_metadata)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Metadata:  # type: ignore[override]
        return self._trailing

    # -- the call --------------------------------------------------------------------------

    def invocation_metadata(self) -> Metadata:  # type: ignore[override]
        return self._metadata

    def time_remaining(self) -> float | None:  # type: ignore[override]
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._loop.time())

    def peer(self) -> str:
        return self._peer

    def peer_identities(self) -> Iterable[bytes] | None:
        return None

    def peer_identity_key(self) -> str | None:
        return None

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        return {}

    def set_compression(self, compression: grpc.Compression) -> None:
        pass

    def disable_next_message_compression(self) -> None:
        pass

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self.done():
            callback(self)
        else:
            self._done.append(callback)

    def cancelled(self) -> bool:
        return self.task is not None and self.task.cancelled()

    def done(self) -> bool:
        return self.task is not None and self.task.done()
