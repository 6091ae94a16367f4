"""HTTP I/O for one backend: one pooled ``aiohttp.ClientSession`` per backend, keep-alive, timeouts.

aiohttp rather than httpx on this hot path: side by side against the same server it costs about
half the CPU per request (httpcore checks every pooled connection on each request), and the
router's whole overhead budget is about a millisecond.

Pure translation lives in ``caller_svc.providers``; this module sends what an adapter builds and
feeds back what arrives, classifying transport failures into outcome classes:

* connect timeout, first-token timeout, stalled stream, whole-call timeout → ``timeout``
* connection refused / reset / closed before a response → ``network``
* a stream that ends or breaks after it started, without its end marker, or a unary response
  body cut after its headers → ``truncated``
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import aiohttp

from caller_svc.providers.base import (
    Adapter,
    HttpRequest,
    MalformedResponse,
    ParsedResponse,
    ProviderError,
    ProviderStreamError,
    StreamDelta,
    StreamIncomplete,
)
from caller_svc.sse import SSEDecoder
from uniwizard.config_types import BackendConfig
from uniwizard.types import Outcome


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed exchange: its outcome class and a short message with no prompt text."""

    outcome: Outcome
    message: str
    http_status: int = 0
    retry_after_s: float = 0.0
    partial_text: str = ""


Exchange = ParsedResponse | ProviderError | Failure


class BackendTransport:
    """Sends requests to one backend over a pooled session (created on first use, in the loop)."""

    def __init__(self, backend: BackendConfig, adapter: Adapter):
        self.backend = backend
        self.adapter = adapter
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            b = self.backend
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60, ttl_dns_cache=300),
                # Connect (and pool wait) bounded here; everything else by the call's own
                # whole-call, first-token and idle timeouts below.
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=b.connect_timeout, sock_connect=b.connect_timeout
                ),
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _open(self, req: HttpRequest) -> aiohttp.ClientResponse:
        return await self._client().request(
            req.method, req.url, headers=req.headers, json=req.json, allow_redirects=False
        )

    async def send(self, req: HttpRequest, budget_s: float) -> Exchange:
        """A unary exchange bounded by ``budget_s`` seconds in all."""
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(budget_s):
                resp = await self._open(req)
                body = await resp.read()
        except TimeoutError as exc:
            return Failure(Outcome.TIMEOUT, _timeout_message(exc, budget_s))
        except aiohttp.ClientError as exc:
            if resp is None:
                return Failure(Outcome.NETWORK, _network_message(exc))
            # The status line and headers arrived, then the connection closed mid-body: an
            # answer cut before its end (truncated, as on a stream), not a connection failure
            # (network, which the router retries); an error status keeps its own class.
            if resp.status >= 400:
                return self.adapter.parse_error(resp.status, resp.headers, b"")
            return Failure(
                Outcome.TRUNCATED,
                "response body cut: " + _network_message(exc),
                http_status=resp.status,
            )
        finally:
            if resp is not None:
                resp.release()
        if resp.status >= 400:
            return self.adapter.parse_error(resp.status, resp.headers, body)
        try:
            return self.adapter.parse_response(body)
        except MalformedResponse as exc:
            return Failure(Outcome.MALFORMED, str(exc)[:300], http_status=resp.status)

    async def stream(
        self, req: HttpRequest, budget_s: float
    ) -> AsyncGenerator[StreamDelta | Exchange, None]:
        """Deltas as they arrive, then exactly one final Exchange.

        The first event must arrive within ``first_token_timeout`` and every later one within
        ``stream_idle_timeout``; the whole call within ``budget_s``.
        """
        b = self.backend
        deadline = time.monotonic() + budget_s
        state = self.adapter.new_stream()
        decoder = SSEDecoder()
        text: list[str] = []
        started = False
        resp: aiohttp.ClientResponse | None = None
        try:
            try:
                async with asyncio.timeout(min(b.first_token_timeout, budget_s)):
                    resp = await self._open(req)
            except TimeoutError as exc:
                yield Failure(Outcome.TIMEOUT, _timeout_message(exc, b.first_token_timeout))
                return
            except aiohttp.ClientError as exc:
                yield Failure(Outcome.NETWORK, _network_message(exc))
                return
            if resp.status >= 400:
                try:
                    async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                        body = await resp.read()
                except (TimeoutError, aiohttp.ClientError):
                    body = b""
                yield self.adapter.parse_error(resp.status, resp.headers, body)
                return
            while True:
                limit = b.stream_idle_timeout if started else b.first_token_timeout
                limit = min(limit, deadline - time.monotonic())
                try:
                    if limit <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(limit):
                        chunk = await resp.content.readany()  # decoded (gzip) bytes
                except TimeoutError:
                    what = "stream stalled" if started else "no first token"
                    yield Failure(
                        Outcome.TIMEOUT,
                        f"{what} within {limit:.1f} s",
                        partial_text="".join(text),
                    )
                    return
                except aiohttp.ClientError as exc:
                    outcome = Outcome.TRUNCATED if started else Outcome.NETWORK
                    yield Failure(
                        outcome,
                        "stream broken: " + _network_message(exc),
                        partial_text="".join(text),
                    )
                    return
                if not chunk:  # end of body
                    for event in decoder.close():  # a last event without its blank line
                        try:
                            state.feed(event)
                        except (MalformedResponse, ProviderStreamError):
                            break
                    break
                for event in decoder.feed(chunk):
                    try:
                        deltas = state.feed(event)
                    except MalformedResponse as exc:
                        yield Failure(Outcome.MALFORMED, str(exc)[:300], partial_text="".join(text))
                        return
                    except ProviderStreamError as exc:
                        yield exc.error
                        return
                    for d in deltas:
                        started = True
                        if d.text:
                            text.append(d.text)
                        yield d
                if state.complete:  # end marker, or finish reason + usage: nothing more comes
                    break
            try:
                yield state.finish()
            except StreamIncomplete as exc:
                yield Failure(
                    Outcome.TRUNCATED,
                    str(exc)[:300] or "stream ended early",
                    partial_text="".join(text),
                )
            except MalformedResponse as exc:
                yield Failure(Outcome.MALFORMED, str(exc)[:300], partial_text="".join(text))
        finally:
            if resp is not None:
                resp.close()  # a stream left early must not go back to the pool half-read


def _timeout_message(exc: BaseException, seconds: float) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timeout"
    return f"no answer within {seconds:.1f} s"


def _network_message(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection failed (refused or unreachable)"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "connection closed by the server before a complete response"
    return f"transport error ({type(exc).__name__})"
