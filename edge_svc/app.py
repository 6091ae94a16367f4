"""The HTTP edge: OpenAI's chat-completions protocol in front of the router's gRPC contract.

Thin by design: each handler checks the caller, reads the body, hands it to the pure
translation (``request.py``, ``messages.py``, ``models.py``, ``response.py``, ``errors.py``;
streams in ``sse.py``) and calls the
router through the one client library (``uniwizard_client.AsyncBackendRouter``), which it is
given at construction: over the network, or an in-process channel when the router runs here.
It names the HTTP caller's token (its name, never the token) in each call
(``on_behalf_of``), so the router records, and budgets, the task under that name: believed
because the edge's own link is a ``service`` one (in-process, or ``UNIWIZARD_TOKEN``).

Routes: ``POST /v1/chat/completions`` (unary, or SSE with ``stream``), ``GET /v1/models``,
``GET /v1/models/{id}``, and ``GET /health`` (no token; 503 while draining). Errors are OpenAI's
shape (``errors.py``). Nothing of a request's content or token is logged or put on a span.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from edge_svc.auth import check_caller
from edge_svc.config import EdgeConfig
from edge_svc.errors import ApiError, bad_request, from_router_error, too_large
from edge_svc.fetch import ImageFetcher
from edge_svc.models import AUTO, Selection, known, model_entries, model_list, select
from edge_svc.request import ChatRequest, parse_chat, with_images
from edge_svc.response import completion, headers
from edge_svc.sse import SseResponse
from edge_svc.tracing import edge_tracer, request_span, traceparent
from uniwizard.auth_grpc import load_authorizer
from uniwizard.security import Security
from uniwizard_client import AsyncBackendRouter, Catalog, RouterError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CATALOG_TTL_S = 5.0  # model names are resolved on a catalog at most this old ...
CATALOG_MISS_S = 1.0  # ... and an unknown name looks again at most this often


class CatalogCache:
    """The router's catalog for resolving ``model``: kept a few seconds, looked at again (at most
    once a second) for a name it does not know, so a reload that adds one is seen."""

    def __init__(self, router: AsyncBackendRouter, clock: Callable[[], float] = time.monotonic):
        self.router = router
        self.clock = clock
        self._catalog: Catalog | None = None
        self._at = -1e9
        self._lock = asyncio.Lock()

    async def fresh(self) -> Catalog:
        async with self._lock:
            self._catalog = await self.router.catalog()
            self._at = self.clock()
            return self._catalog

    async def select(self, model: str) -> Selection:
        if model == AUTO:
            return Selection("auto", "")
        age = self.clock() - self._at
        catalog = self._catalog
        if (
            catalog is None
            or age > CATALOG_TTL_S
            or (not known(model, catalog) and age > CATALOG_MISS_S)
        ):
            catalog = await self.fresh()
        return select(model, catalog)


class Edge:
    """The edge's handlers around one router client."""

    def __init__(
        self,
        router: AsyncBackendRouter,
        config: EdgeConfig,
        security: Security,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.config = config
        self.security = security
        self.authorizer = load_authorizer(security=security)
        self.clock = clock
        self.catalog = CatalogCache(router)
        self.fetcher = ImageFetcher(config)
        self.tracer = edge_tracer()
        self.draining = False

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_bytes, middlewares=[self._errors]
        )
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        app.router.add_get("/health", self.health)
        return app

    async def close(self) -> None:
        await self.fetcher.close()

    # -- routes ------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "serving"})

    async def models(self, request: web.Request) -> web.Response:
        check_caller(request.headers.get("Authorization"), self.authorizer)
        return web.json_response(model_list(await self._catalog()))

    async def model(self, request: web.Request) -> web.Response:
        check_caller(request.headers.get("Authorization"), self.authorizer)
        wanted = request.match_info["model"]
        for entry in model_entries(await self._catalog()):
            if entry["id"] == wanted:
                return web.json_response(entry)
        raise ApiError(404, f"no model {wanted!r} (GET /v1/models lists them)", code="not_found")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        client = check_caller(request.headers.get("Authorization"), self.authorizer).name
        request_id = uuid.uuid4().hex
        chat = parse_chat(
            await self._json(request),
            request_id=request_id,
            fetch_urls=self.config.fetches_images,
        )
        selection = await self._selection(chat.model)
        if chat.image_urls:
            chat = with_images(chat, await self.fetcher.fetch_all(chat.image_urls))
        with request_span(self.tracer, request.headers, "POST /v1/chat/completions") as span:
            span.set_attribute("http.request.method", "POST")
            span.set_attribute("http.route", "/v1/chat/completions")
            span.set_attribute("uniwizard.request_id", request_id)
            span.set_attribute("uniwizard.model", chat.model)  # a known model name only
            if client:
                span.set_attribute("uniwizard.client", client)  # the token's name, never it
            parent = traceparent(span.get_span_context())
            try:
                response = await (
                    self._stream(request, chat, selection, parent, client)
                    if chat.stream
                    else self._unary(chat, selection, parent, client)
                )
            except ApiError as err:
                err.headers.update({"x-uniwizard-request-id": request_id, "traceparent": parent})
                span.set_attribute("error.type", err.code)
                span.set_attribute("http.response.status_code", err.status)
                raise
            span.set_attribute("http.response.status_code", response.status)
            return response

    # -- chat completions ----------------------------------------------------------------------

    async def _unary(
        self, chat: ChatRequest, sel: Selection, parent: str, client: str
    ) -> web.Response:
        try:
            result = await self.router.dispatch(
                chat.task,
                sel.backend,
                category=sel.category,
                deadline=self.config.deadline_s,
                on_behalf_of=client,
            )
        except RouterError as err:
            raise from_router_error(err, chat.task.request_id) from None
        body = completion(result, created=int(self.clock()))
        return web.Response(
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers=headers(
                backend=result.backend,
                category=result.category,
                request_id=result.request_id,
                traceparent=parent,
                cost_usd=result.cost_usd,
            ),
        )

    async def _stream(
        self, request: web.Request, chat: ChatRequest, sel: Selection, parent: str, client: str
    ) -> web.StreamResponse:
        events = self.router.dispatch_stream(
            chat.task,
            sel.backend,
            category=sel.category,
            deadline=self.config.deadline_s,
            on_behalf_of=client,
        )
        return await SseResponse(request, chat, parent, int(self.clock())).relay(events)

    # -- helpers -------------------------------------------------------------------------------

    async def _json(self, request: web.Request) -> Any:
        size = request.content_length
        limit = self.config.max_body_bytes
        if size is not None and size > limit:
            raise too_large(size, limit, "UNIWIZARD_MAX_MESSAGE_BYTES")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large(None, limit, "UNIWIZARD_MAX_MESSAGE_BYTES") from None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("the body is not valid JSON") from None

    async def _catalog(self) -> Catalog:
        try:
            return await self.catalog.fresh()
        except RouterError as err:
            raise from_router_error(err) from None

    async def _selection(self, model: str) -> Selection:
        try:
            return await self.catalog.select(model)
        except RouterError as err:
            raise from_router_error(err) from None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return _error_response(err)
        except web.HTTPException as exc:  # the router's own 404 / 405
            if exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
            return _error_response(
                ApiError(exc.status, f"{request.method} {request.path}: {exc.reason}", code=code)
            )
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # a bug: say so without echoing anything of the request
            log.exception("%s %s failed: %s", request.method, request.path, type(exc).__name__)
            return _error_response(
                ApiError(500, "internal error in the edge", type="api_error", code="internal")
            )


def _error_response(err: ApiError) -> web.Response:
    return web.Response(
        status=err.status,
        body=json.dumps(err.body()).encode(),
        content_type="application/json",
        headers=err.headers,
    )
