"""Reading answers: a complete HTTP reply, or a streamed body chunk by chunk. Pure, no I/O.

:func:`parse_reply` turns a status and body into a :class:`ParsedResponse` or a
:class:`~uniwizard.types.Failure`. :class:`StreamParser` takes a Server-Sent Events body in
chunks of any size (SSE decoding and the adapter's stream state together) and ends in the same
two shapes: whoever reads the bytes only has to hand them over and ask for the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from uniwizard.providers.base import (
    MAX_ERROR_MESSAGE,
    Adapter,
    MalformedResponse,
    ParsedResponse,
    ProviderStreamError,
    StreamIncomplete,
)
from uniwizard.providers.sse import SSEDecoder
from uniwizard.types import Delta, Failure, Outcome


def parse_reply(
    adapter: Adapter, status: int, headers: Mapping[str, str], body: bytes
) -> ParsedResponse | Failure:
    """A unary answer: an error status, or an error object in a 2xx body, is the provider's
    failure; a body we cannot read is ``malformed``."""
    if status >= 400:
        return adapter.parse_error(status, headers, body)
    try:
        return adapter.parse_response(body)
    except MalformedResponse as exc:
        return Failure(Outcome.MALFORMED, str(exc)[:MAX_ERROR_MESSAGE], http_status=status)
    except ProviderStreamError as exc:  # an error object sent with a 2xx status
        return replace(exc.failure, http_status=exc.failure.http_status or status)


class StreamParser:
    """One streamed answer: feed it the body's chunks; ``result`` is set once it has ended.

    It ends when the adapter says nothing more is expected (its end marker, or the finish
    reason plus usage), when an event is malformed or carries a provider error, or at
    :meth:`end` (the body ended). After that, :meth:`feed` ignores what it is given.
    """

    def __init__(self, adapter: Adapter) -> None:
        self._state = adapter.new_stream()
        self._decoder = SSEDecoder()
        self._text: list[str] = []
        self.started = False  # a delta has been produced
        self.result: ParsedResponse | Failure | None = None

    @property
    def text(self) -> str:
        """The text delivered so far."""
        return "".join(self._text)

    def feed(self, chunk: bytes) -> list[Delta]:
        """The deltas this chunk completes."""
        if self.result is not None:
            return []
        out: list[Delta] = []
        for event in self._decoder.feed(chunk):
            try:
                deltas = self._state.feed(event)
            except MalformedResponse as exc:
                self.result = self._failure(Outcome.MALFORMED, exc)
                return out
            except ProviderStreamError as exc:
                self.result = exc.failure
                return out
            for d in deltas:
                self.started = True
                if d.text:
                    self._text.append(d.text)
                out.append(d)
        if self._state.complete:
            self._finish()
        return out

    def end(self) -> None:
        """The body ended: a last event without its blank line still counts, then finish."""
        if self.result is not None:
            return
        for event in self._decoder.close():
            try:
                self._state.feed(event)
            except (MalformedResponse, ProviderStreamError):
                break
        self._finish()

    def fail(self, failure: Failure) -> Failure:
        """End the stream with a failure from outside (the wire), keeping what was delivered."""
        self.result = Failure(
            failure.outcome,
            failure.message,
            failure.http_status,
            failure.retry_after_s,
            failure.provider_code,
            partial_text=self.text,
        )
        return self.result

    def _finish(self) -> None:
        try:
            self.result = self._state.finish()
        except StreamIncomplete as exc:
            self.result = self._failure(Outcome.TRUNCATED, exc, "stream ended early")
        except MalformedResponse as exc:
            self.result = self._failure(Outcome.MALFORMED, exc)

    def _failure(self, outcome: Outcome, exc: Exception, default: str = "") -> Failure:
        message = str(exc)[:MAX_ERROR_MESSAGE] or default
        return Failure(outcome, message, partial_text=self.text)
