"""Bytes over HTTP for one backend: a pooled ``aiohttp.ClientSession``, keep-alive, timeouts.

This is the only HTTP stack the services use, for calls (caller_svc) and for probes
(registry_svc). It moves bytes and never reads a provider's format: it returns a status, headers
and a body (:meth:`HttpTransport.send`) or chunks (:meth:`HttpTransport.open`), and classifies
only what can go wrong on the wire:

* connect timeout, or no complete answer within the time given → ``timeout``
* connection refused, reset or closed before a response → ``network``
* a body cut after the status line and headers → ``truncated``

aiohttp rather than httpx: side by side against the same server it costs about half the CPU per
request (httpcore checks every pooled connection on each request), and the router's whole
overhead budget is about a millisecond.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from uniwizard.providers.base import HttpRequest
from uniwizard.types import Failure, Outcome


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A complete HTTP answer, whatever its status."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class TransportError(Exception):
    """A failure on the wire while reading a stream; ``failure`` says which."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class HttpStream:
    """An open response whose body is read chunk by chunk. Close it when done (always)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read_chunk(self, timeout_s: float) -> bytes:
        """The next bytes of the (decoded) body, ``b""`` at its end.

        Raises :class:`TransportError`: ``timeout`` when nothing arrives within ``timeout_s``,
        ``truncated`` when the connection breaks.
        """
        try:
            if timeout_s <= 0:
                raise TimeoutError
            async with asyncio.timeout(timeout_s):
                return await self._response.content.readany()
        except TimeoutError:
            raise TransportError(
                Failure(Outcome.TIMEOUT, f"nothing within {timeout_s:.1f} s")
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(Failure(Outcome.TRUNCATED, _network_message(exc))) from None

    async def read_body(self, timeout_s: float) -> bytes:
        """The rest of the body; ``b""`` when it cannot be read in time (an error body is a
        courtesy: its status already says what happened)."""
        try:
            async with asyncio.timeout(max(0.1, timeout_s)):
                return await self._response.read()
        except (TimeoutError, aiohttp.ClientError):
            return b""

    def close(self) -> None:
        """Drop the connection: a stream left early must not go back to the pool half-read."""
        self._response.close()


class HttpTransport:
    """Sends requests over one pooled session (created on first use, in the running loop)."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            t = self.connect_timeout
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60, ttl_dns_cache=300),
                # Connect (and pool wait) bounded here; everything else by each call's own time.
                timeout=aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t),
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(self, req: HttpRequest) -> aiohttp.ClientResponse:
        return await self._client().request(
            req.method, req.url, headers=req.headers, json=req.json, allow_redirects=False
        )

    async def send(self, req: HttpRequest, budget_s: float) -> HttpReply | Failure:
        """One exchange, bounded by ``budget_s`` seconds in all."""
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(budget_s):
                resp = await self._request(req)
                body = await resp.read()
        except TimeoutError as exc:
            return Failure(Outcome.TIMEOUT, _timeout_message(exc, budget_s))
        except aiohttp.ClientError as exc:
            if resp is None:
                return Failure(Outcome.NETWORK, _network_message(exc))
            # The status line and headers arrived, then the connection closed mid-body: an
            # answer cut before its end, not a connection failure; an error status keeps its
            # own meaning, so it is returned with what arrived (nothing).
            if resp.status >= 400:
                return HttpReply(resp.status, resp.headers, b"")
            return Failure(
                Outcome.TRUNCATED,
                "response body cut: " + _network_message(exc),
                http_status=resp.status,
            )
        finally:
            if resp is not None:
                resp.release()
        return HttpReply(resp.status, resp.headers, body)

    async def open(self, req: HttpRequest, timeout_s: float) -> HttpStream | Failure:
        """Send ``req`` and return once the status line and headers are in (within
        ``timeout_s``); read the body from the returned stream."""
        try:
            async with asyncio.timeout(timeout_s):
                return HttpStream(await self._request(req))
        except TimeoutError as exc:
            return Failure(Outcome.TIMEOUT, _timeout_message(exc, timeout_s))
        except aiohttp.ClientError as exc:
            return Failure(Outcome.NETWORK, _network_message(exc))


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
