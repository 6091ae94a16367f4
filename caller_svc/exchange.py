"""Send one built request to one backend and read its answer: the transport moves the bytes, the
provider layer reads them. Ends in a :class:`ParsedResponse` or a :class:`Failure`, never raises
for anything the network or the provider does.

Timeouts of a stream: the first event must arrive within the backend's ``first_token_timeout``,
every later one within ``stream_idle_timeout``, and the whole call within its budget.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from uniwizard.config_types import BackendConfig
from uniwizard.providers.base import Adapter, HttpRequest, ParsedResponse
from uniwizard.providers.stream import StreamParser, parse_reply
from uniwizard.transport import HttpTransport, TransportError
from uniwizard.types import Delta, Failure, Outcome


@dataclass(frozen=True, slots=True)
class Backend:
    """What the caller holds per backend: its configuration, adapter and connection pool."""

    config: BackendConfig
    adapter: Adapter
    transport: HttpTransport


async def exchange(
    backend: Backend, http: HttpRequest, budget_s: float
) -> ParsedResponse | Failure:
    """A unary exchange within ``budget_s`` seconds."""
    reply = await backend.transport.send(http, budget_s)
    if isinstance(reply, Failure):
        return reply
    return parse_reply(backend.adapter, reply.status, reply.headers, reply.body)


async def exchange_stream(
    backend: Backend, http: HttpRequest, budget_s: float
) -> AsyncGenerator[Delta | ParsedResponse | Failure, None]:
    """Deltas as they arrive, then exactly one ParsedResponse or Failure."""
    b = backend.config
    deadline = time.monotonic() + budget_s
    opened = await backend.transport.open(http, min(b.first_token_timeout, budget_s))
    if isinstance(opened, Failure):
        yield opened
        return
    try:
        if opened.status >= 400:
            body = await opened.read_body(deadline - time.monotonic())
            yield backend.adapter.parse_error(opened.status, opened.headers, body)
            return
        parser = StreamParser(backend.adapter)
        while parser.result is None:
            limit = b.stream_idle_timeout if parser.started else b.first_token_timeout
            limit = max(0.0, min(limit, deadline - time.monotonic()))
            try:
                chunk = await opened.read_chunk(limit)
            except TransportError as exc:
                parser.fail(_broken(exc.failure, started=parser.started, limit=limit))
                break
            if not chunk:  # the end of the body
                parser.end()
            for delta in parser.feed(chunk):  # nothing once ended
                yield delta
        assert parser.result is not None
        yield parser.result
    finally:
        opened.close()


def _broken(failure: Failure, *, started: bool, limit: float) -> Failure:
    """A stream that failed on the wire. Before any delta, a broken connection is a network
    failure (nothing of an answer arrived, so trying again is safe); after, a truncated answer."""
    if failure.outcome is Outcome.TIMEOUT:
        what = "stream stalled" if started else "no first token"
        return Failure(Outcome.TIMEOUT, f"{what} within {limit:.1f} s")
    outcome = Outcome.TRUNCATED if started else Outcome.NETWORK
    return Failure(outcome, "stream broken: " + failure.message)
