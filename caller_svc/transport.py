"""HTTP I/O for one backend: one pooled ``httpx.AsyncClient`` per backend, keep-alive, timeouts.

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
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

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


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=60)


class BackendTransport:
    """Sends requests to one backend over a pooled client."""

    def __init__(self, backend: BackendConfig, adapter: Adapter):
        self.backend = backend
        self.adapter = adapter
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=backend.connect_timeout,
                read=None,  # bounded below: whole-call, first-token and idle timeouts
                write=backend.connect_timeout + 10,
                pool=backend.connect_timeout,
            ),
            limits=_limits(),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _build(self, req: HttpRequest) -> httpx.Request:
        return self.client.build_request(req.method, req.url, headers=req.headers, json=req.json)

    async def send(self, req: HttpRequest, budget_s: float) -> Exchange:
        """A unary exchange bounded by ``budget_s`` seconds in all."""
        resp: httpx.Response | None = None
        try:
            async with asyncio.timeout(budget_s):
                # stream=True so that a failure while reading the body can be told apart from a
                # failure before any response (see below).
                resp = await self.client.send(self._build(req), stream=True)
                body = await resp.aread()
        except (TimeoutError, httpx.TimeoutException) as exc:
            return Failure(Outcome.TIMEOUT, _timeout_message(exc, budget_s))
        except httpx.TransportError as exc:
            if resp is None:
                return Failure(Outcome.NETWORK, _network_message(exc))
            # Fix (e2e test_caller_faults, unary "cut"): the status line and headers arrived,
            # then the connection closed mid-body. That is an answer cut before its end
            # (truncated, as on a stream), not a connection failure (network, which the router
            # retries); an error status keeps its own classification.
            if resp.status_code >= 400:
                return self.adapter.parse_error(resp.status_code, resp.headers, b"")
            return Failure(
                Outcome.TRUNCATED,
                "response body cut: " + _network_message(exc),
                http_status=resp.status_code,
            )
        finally:
            if resp is not None:
                await resp.aclose()
        if resp.status_code >= 400:
            return self.adapter.parse_error(resp.status_code, resp.headers, body)
        try:
            return self.adapter.parse_response(body)
        except MalformedResponse as exc:
            return Failure(Outcome.MALFORMED, str(exc)[:300], http_status=resp.status_code)

    async def stream(
        self, req: HttpRequest, budget_s: float
    ) -> AsyncIterator[StreamDelta | Exchange]:
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
        resp: httpx.Response | None = None
        try:
            try:
                async with asyncio.timeout(min(b.first_token_timeout, budget_s)):
                    resp = await self.client.send(self._build(req), stream=True)
            except (TimeoutError, httpx.TimeoutException) as exc:
                yield Failure(Outcome.TIMEOUT, _timeout_message(exc, b.first_token_timeout))
                return
            except httpx.TransportError as exc:
                yield Failure(Outcome.NETWORK, _network_message(exc))
                return
            if resp.status_code >= 400:
                try:
                    async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                        body = await resp.aread()
                except (TimeoutError, httpx.HTTPError):
                    body = b""
                yield self.adapter.parse_error(resp.status_code, resp.headers, body)
                return
            chunks = resp.aiter_bytes()  # decoded (gzip) bytes
            while True:
                limit = b.stream_idle_timeout if started else b.first_token_timeout
                limit = min(limit, deadline - time.monotonic())
                try:
                    if limit <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(limit):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    for event in decoder.close():  # a last event without its blank line
                        try:
                            state.feed(event)
                        except (MalformedResponse, ProviderStreamError):
                            break
                    break
                except (TimeoutError, httpx.TimeoutException):
                    what = "stream stalled" if started else "no first token"
                    outcome = Outcome.TIMEOUT
                    yield Failure(
                        outcome, f"{what} within {limit:.1f} s", partial_text="".join(text)
                    )
                    return
                except httpx.TransportError as exc:
                    outcome = Outcome.TRUNCATED if started else Outcome.NETWORK
                    yield Failure(
                        outcome,
                        "stream broken: " + _network_message(exc),
                        partial_text="".join(text),
                    )
                    return
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
                await resp.aclose()


def _timeout_message(exc: BaseException, seconds: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timeout"
    return f"no answer within {seconds:.1f} s"


def _network_message(exc: httpx.TransportError) -> str:
    kind = type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return "connection failed (refused or unreachable)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed by the server before a complete response"
    return f"transport error ({kind})"
