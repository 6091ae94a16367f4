"""Our answers -> OpenAI's chat-completion JSON: the whole completion, the stream's chunks, the
usage and our headers. Pure: no I/O.

Beside OpenAI's fields, a completion (and a stream's last chunk) carries ``uniwizard``: the
backend that answered, the category, the request and trace ids, the cost of every attempt
together, and the attempts. Tool calls carry our ``provider_state`` when the provider left one:
send the assistant message back as it came and the next turn gets it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_svc.errors import attempt_json
from uniwizard.types import ToolCall
from uniwizard_client import ThinkResult

# Our normalised finish reasons -> OpenAI's (refusal and other become stop: the text says it).
_FINISH = {"length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}

DONE = b"data: [DONE]\n\n"


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def finish_reason(result: ThinkResult) -> str:
    if result.tool_calls:
        return "tool_calls"
    return _FINISH.get(result.finish_reason, "stop")


def usage_json(result: ThinkResult) -> dict[str, Any]:
    """The answer's tokens as OpenAI counts them (the cached and reasoning parts included)."""
    answered = next((a for a in reversed(result.attempts) if a.outcome == "success"), None)
    cached = answered.cached_input_tokens if answered else 0
    written = answered.cache_write_tokens if answered else 0
    reasoning = answered.reasoning_tokens if answered else 0
    return {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def uniwizard_json(result: ThinkResult) -> dict[str, Any]:
    return {
        "backend": result.backend,
        "category": result.category,
        "request_id": result.request_id,
        "trace_id": result.trace_id,
        "cost_usd": result.cost_usd,
        "attempts": [attempt_json(a) for a in result.attempts],
    }


def tool_call_json(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {} if index is None else {"index": index}
    out.update(
        id=call.id,
        type="function",
        function={"name": call.name, "arguments": call.arguments_json},
    )
    if call.provider_state:
        out["provider_state"] = call.provider_state
    return out


def completion(result: ThinkResult, *, created: int) -> dict[str, Any]:
    """The chat.completion object for an answer."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.text if result.text or not result.tool_calls else None,
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = [tool_call_json(c) for c in result.tool_calls]
    return {
        "id": completion_id(result.request_id),
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(result),
                "logprobs": None,
            }
        ],
        "usage": usage_json(result),
        "system_fingerprint": None,
        "uniwizard": uniwizard_json(result),
    }


def headers(
    *,
    backend: str,
    category: str,
    request_id: str,
    traceparent: str,
    cost_usd: float | None = None,
) -> dict[str, str]:
    """Our response headers (a stream's are sent before its cost is known: no cost header)."""
    out = {
        "x-uniwizard-backend": backend,
        "x-uniwizard-category": category,
        "x-uniwizard-request-id": request_id,
        "traceparent": traceparent,
    }
    if cost_usd is not None:
        out["x-uniwizard-cost-usd"] = f"{cost_usd:.8f}"
    return out


@dataclass(frozen=True, slots=True)
class Chunks:
    """The chunks of one streamed completion, in OpenAI's chat.completion.chunk shape.

    ``model`` is the answering backend's model for every chunk. With ``include_usage`` every
    chunk has ``"usage": null`` and a last chunk with no choices carries the usage.
    """

    id: str
    created: int
    model: str
    include_usage: bool = False

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "system_fingerprint": None,
        }
        if self.include_usage:
            out["usage"] = None
        out.update(extra)
        return out

    def _delta(self, delta: Mapping[str, Any], finish: str | None = None) -> dict[str, Any]:
        return self._chunk(
            [{"index": 0, "delta": dict(delta), "finish_reason": finish, "logprobs": None}]
        )

    def opening(self) -> dict[str, Any]:
        return self._delta({"role": "assistant", "content": "", "refusal": None})

    def text(self, text: str) -> dict[str, Any]:
        return self._delta({"content": text})

    def tool_call(self, call: ToolCall, index: int) -> dict[str, Any]:
        return self._delta({"tool_calls": [tool_call_json(call, index)]})

    def finish(self, result: ThinkResult) -> dict[str, Any]:
        chunk = self._delta({}, finish_reason(result))
        if not self.include_usage:
            chunk["uniwizard"] = uniwizard_json(result)
        return chunk

    def usage(self, result: ThinkResult) -> dict[str, Any]:
        return self._chunk([], usage=usage_json(result), uniwizard=uniwizard_json(result))


def sse(obj: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
