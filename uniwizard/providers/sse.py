"""An incremental, pure Server-Sent Events decoder (the WHATWG ``text/event-stream`` rules).

Feed it the body's bytes as they arrive, in chunks of any size; it returns the events completed
by each chunk. Lines may end in CRLF, LF or CR (a CR at the end of a chunk waits for the next
chunk, in case an LF follows). ``data:`` lines of one event are joined with ``\\n``; ``event:``
names the event (default ``"message"``); ``id:`` and ``retry:`` are tracked; lines starting with
``:`` are comments (keep-alives) and are ignored; a UTF-8 BOM at the start is dropped; a multi-byte
UTF-8 character split across chunks is decoded correctly.

At end of body call :meth:`SSEDecoder.close`. Unlike the strict spec (which drops an event not
followed by a blank line), ``close`` dispatches a pending event whose last line was complete,
because some servers end the body right after the final ``data:`` line. A partial, unterminated
line is always discarded: that is a cut stream, and the adapter's end-marker logic reports it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str = ""


class SSEDecoder:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""  # undecoded-line text
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._has_fields = False
        self.last_event_id = ""
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        self._buffer += text
        return self._drain(final=False)

    def close(self) -> list[SSEEvent]:
        """End of body: decode what is left and dispatch a pending complete event."""
        self._buffer += self._decoder.decode(b"", final=True)
        events = self._drain(final=True)
        # Whatever remains in the buffer is an unterminated line: discard it.
        self._buffer = ""
        if self._has_fields:
            event = self._dispatch()
            if event is not None:
                events.append(event)
        return events

    def _drain(self, *, final: bool) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        buf = self._buffer
        pos = 0
        n = len(buf)
        while pos < n:
            cr = buf.find("\r", pos)
            lf = buf.find("\n", pos)
            if cr == -1 and lf == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == n and not final:
                    break  # a CR at the end of the chunk: an LF may follow in the next one
                line = buf[pos:cr]
                pos = cr + 2 if cr + 1 < n and buf[cr + 1] == "\n" else cr + 1
            else:
                line = buf[pos:lf]
                pos = lf + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buf[pos:]
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_fields = True
        elif name == "event":
            self._event = value
            self._has_fields = True
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
            self._has_fields = True
        elif name == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        # unknown field names are ignored, as the spec says
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._has_fields = [], "", False
        if not data:
            return None  # the spec: an event with no data is not dispatched
        return SSEEvent(event=event or "message", data="\n".join(data), id=self.last_event_id)
