"""A streamed chat completion: the router's events as OpenAI's SSE chunks.

The response's headers go out with the first chunk, once the router says which backend answers
(``Answering``); until then a failure is an ordinary error response. After it a failure is one
``data: {"error": {...}}`` event and the stream never ends with ``[DONE]``. A client that goes
away closes the event stream, which cancels the call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from aiohttp import web

from edge_svc.errors import from_router_error
from edge_svc.request import ChatRequest
from edge_svc.response import DONE, Chunks, completion_id, headers, sse
from uniwizard_client import (
    Answering,
    Routed,
    RouterError,
    StreamEvent,
    TextDelta,
    ThinkResult,
    ToolCalled,
)

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


class SseResponse:
    """One streamed completion's response, opened (headers sent) on the first chunk."""

    def __init__(self, request: web.Request, chat: ChatRequest, parent: str, created: int):
        self.request = request
        self.request_id = chat.task.request_id
        self.include_usage = chat.include_usage
        self.parent = parent
        self.created = created
        self.category = ""
        self.response: web.StreamResponse | None = None
        self._chunks: Chunks | None = None

    async def relay(self, events: AsyncGenerator[StreamEvent, None]) -> web.StreamResponse:
        """Write the events out; raises ``ApiError`` for a failure before anything went out."""
        try:
            await self._relay(events)
        except RouterError as err:
            error = from_router_error(err, self.request_id)
            if self.response is None:
                raise error from None
            await self.write(sse(error.body()))
        assert self.response is not None, "a stream ends with a result or raises"
        await self.response.write_eof()
        return self.response

    async def _relay(self, events: AsyncGenerator[StreamEvent, None]) -> None:
        tool_calls = 0
        async with aclosing(events):  # leaving early (the client went away) cancels the call
            async for event in events:
                if isinstance(event, Routed):
                    self.category = event.decision.category
                elif isinstance(event, Answering):
                    await self.open(event.backend, event.model)
                elif isinstance(event, TextDelta):
                    await self.write(sse(self.chunks.text(event.text)))
                elif isinstance(event, ToolCalled):
                    await self.write(sse(self.chunks.tool_call(event.call, tool_calls)))
                    tool_calls += 1
                elif isinstance(event, ThinkResult):
                    await self.open(event.backend, event.model)
                    await self.write(sse(self.chunks.finish(event)))
                    if self.include_usage:
                        await self.write(sse(self.chunks.usage(event)))
                    await self.write(DONE)

    @property
    def chunks(self) -> Chunks:
        assert self._chunks is not None, "the router sends answering before any delta"
        return self._chunks

    async def open(self, backend: str, model: str) -> None:
        if self.response is not None:
            return
        response = web.StreamResponse(
            headers={
                **SSE_HEADERS,
                **headers(
                    backend=backend,
                    category=self.category,
                    request_id=self.request_id,
                    traceparent=self.parent,
                ),
            }
        )
        await response.prepare(self.request)
        self.response = response
        self._chunks = Chunks(
            completion_id(self.request_id), self.created, model, self.include_usage
        )
        await self.write(sse(self._chunks.opening()))

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)
