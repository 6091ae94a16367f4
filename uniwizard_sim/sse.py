"""Server-sent-event framing helpers."""

from __future__ import annotations

import json
from typing import Any

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(obj: Any) -> str:
    """Compact JSON, as providers send it."""
    return _dumps(obj)


def data(obj: Any, *, crlf: bool = False) -> bytes:
    """A ``data: {json}`` event (OpenAI uses LF, Gemini CRLF line endings)."""
    end = "\r\n\r\n" if crlf else "\n\n"
    return f"data: {_dumps(obj)}{end}".encode()


def named(event: str, obj: Any) -> bytes:
    """An ``event: NAME`` + ``data: {json}`` event (Anthropic style)."""
    return f"event: {event}\ndata: {_dumps(obj)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


def fault_position(kinds: list[str], after_chunks: int) -> int:
    """Index of the stream event *before which* a positional fault acts.

    ``kinds`` are the events' kinds (see :class:`uniwizard_sim.common.StreamEvent`).
    The fault acts after the ``after_chunks``-th content event (0 = before the first
    one; more than there are = after the last). With no content events it acts
    before the first end event.
    """
    content = [i for i, k in enumerate(kinds) if k == "content"]
    if not content:
        return next((i for i, k in enumerate(kinds) if k in ("end", "done")), len(kinds))
    if after_chunks <= 0:
        return content[0]
    return content[min(after_chunks, len(content)) - 1] + 1
