"""Anthropic Messages API (``POST {url}/messages``, ``anthropic-version: 2023-06-01``).

The version is pinned to 2023-06-01, the one whose request/response format this adapter writes
and reads; the API still serves it. (Anthropic's SDK 2.x defaults to 2026-10-21 and sends the key
as ``authorization: Bearer``; the API accepts ``x-api-key`` too and prefers it when both come.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from uniwizard.config_types import BackendConfig
from uniwizard.providers._common import (
    as_int,
    as_str,
    b64,
    base_url,
    load_json_object,
    max_output_tokens,
    plain_error_message,
    provider_state,
    read_provider_state,
    request_headers,
    text_attachment,
    tool_arguments,
    tool_schema,
    try_json,
)
from uniwizard.providers.base import (
    FINISH_LENGTH,
    FINISH_OTHER,
    FINISH_REFUSAL,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    MAX_ERROR_MESSAGE,
    Delta,
    Failure,
    HttpRequest,
    MalformedResponse,
    ParsedResponse,
    ProviderStreamError,
    StreamIncomplete,
    UnsupportedInput,
)
from uniwizard.providers.formats import schema_of
from uniwizard.providers.outcomes import (
    classify_error,
    outcome_for_status,
    parse_retry_after,
    truncate,
)
from uniwizard.types import (
    Attachment,
    BlindRequest,
    Message,
    Outcome,
    OutputFormat,
    Role,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from uniwizard.providers.sse import SSEEvent

ANTHROPIC_VERSION = "2023-06-01"

_FINISH_MAP = {
    "end_turn": FINISH_STOP,
    "stop_sequence": FINISH_STOP,
    "max_tokens": FINISH_LENGTH,
    "model_context_window_exceeded": FINISH_LENGTH,
    "tool_use": FINISH_TOOL_CALLS,
    "refusal": FINISH_REFUSAL,
    "pause_turn": FINISH_OTHER,  # a server tool's long turn was paused; not used here
}

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

_ERROR_TYPES: dict[str, Outcome] = {
    "rate_limit_error": Outcome.RATE_LIMITED,
    "overloaded_error": Outcome.OVERLOADED,
    "api_error": Outcome.SERVER_ERROR,
    "timeout_error": Outcome.TIMEOUT,
    "authentication_error": Outcome.AUTH,
    "permission_error": Outcome.AUTH,
    "billing_error": Outcome.AUTH,  # no credit: down until someone fixes it
    "request_too_large": Outcome.CONTEXT_WINDOW,
    "not_found_error": Outcome.BAD_REQUEST,
}

# The HTTP status each error type is sent with, for errors that arrive inside a stream.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _usage(value: Any) -> Usage | None:
    """Anthropic's ``input_tokens`` EXCLUDES cache reads (``cache_read_input_tokens``) and cache
    writes (``cache_creation_input_tokens``); ours, as the GenAI conventions ask, includes both.
    ``output_tokens`` already includes thinking tokens, which Anthropic does not count apart."""
    if not isinstance(value, dict):
        return None
    cache_read = as_int(value.get("cache_read_input_tokens"))
    cache_write = as_int(value.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=as_int(value.get("input_tokens")) + cache_read + cache_write,
        output_tokens=as_int(value.get("output_tokens")),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


# Content blocks that carry the model's thinking: sent back, unchanged, with the tool calls of
# the same turn (the API requires it when thinking is on, and checks their signature).
_THINKING_BLOCKS = ("thinking", "redacted_thinking")


def _thinking_block(block: dict[str, Any]) -> dict[str, Any]:
    """Only the fields the API takes back: thinking + signature, or the redacted data."""
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": as_str(block.get("data"))}
    return {
        "type": "thinking",
        "thinking": as_str(block.get("thinking")),
        "signature": as_str(block.get("signature")),
    }


def _with_thinking(calls: list[ToolCall], thinking: list[dict[str, Any]]) -> list[ToolCall]:
    """The turn's thinking blocks ride on its first tool call (in the order they came)."""
    if not calls or not thinking or calls[0].provider_state:
        return calls
    state = provider_state("anthropic", thinking=thinking)
    return [replace(calls[0], provider_state=state), *calls[1:]]


def _refusal(raw: str) -> tuple[bool, str]:
    if raw == "refusal":
        return True, "anthropic stop_reason=refusal"
    return False, ""


class AnthropicAdapter:
    name: str = "anthropic"

    # -- requests -----------------------------------------------------------------------------

    def _headers(
        self, api_key: str | None, *, json_body: bool, stream: bool = False
    ) -> dict[str, str]:
        auth = {"x-api-key": api_key} if api_key is not None else {}
        auth["anthropic-version"] = ANTHROPIC_VERSION
        return request_headers(auth, json_body=json_body, stream=stream)

    def build_request(
        self, backend: BackendConfig, request: BlindRequest, api_key: str | None, *, stream: bool
    ) -> HttpRequest:
        body: dict[str, Any] = {
            "model": backend.model,
            "max_tokens": max_output_tokens(backend, request),
        }
        if request.system_prompt:
            body["system"] = request.system_prompt
        body["messages"] = self._messages(request)
        # request.temperature is deliberately not sent: Anthropic has retired the sampling
        # parameters (API version 2026-10-21 rejects temperature/top_p/top_k, newer models reject
        # temperature on every version with "temperature is deprecated for this model", and the
        # official SDK 2.x no longer offers them). A hint is not worth a 400.
        if request.tools:
            tools: list[dict[str, Any]] = []
            for tool in request.tools:
                entry: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    entry["description"] = tool.description
                entry["input_schema"] = tool_schema(tool.parameters_json, tool.name)
                tools.append(entry)
            body["tools"] = tools
        wanted = request.response_format
        if wanted is not None and wanted.structured:
            if wanted.type is not OutputFormat.JSON_SCHEMA:  # the router never sends one here
                raise UnsupportedInput("response_format: Anthropic needs a json_schema")
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema_of(wanted)}}
        if stream:
            body["stream"] = True
        return HttpRequest(
            method="POST",
            url=f"{base_url(backend)}/messages",
            headers=self._headers(api_key, json_body=True, stream=stream),
            json=body,
        )

    def probe_request(self, backend: BackendConfig, api_key: str | None) -> HttpRequest:
        return HttpRequest(
            method="GET",
            url=f"{base_url(backend)}/models",
            headers=self._headers(api_key, json_body=False),
        )

    def _messages(self, request: BlindRequest) -> list[dict[str, Any]]:
        """Alternating user/assistant turns, starting with user.

        Consecutive messages of the same role merge into one turn with several content blocks;
        tool results are ``tool_result`` blocks in a user turn, placed before any other block of
        that turn (the API requires it).
        """
        turns: list[tuple[str, list[dict[str, Any]]]] = []
        for index, message in enumerate(request.messages):
            role = "assistant" if message.role is Role.ASSISTANT else "user"
            blocks = self._blocks(message, index)
            if turns and turns[-1][0] == role:
                turns[-1][1].extend(blocks)
            else:
                turns.append((role, blocks))
        if turns and turns[0][0] != "user":
            raise UnsupportedInput("anthropic: the conversation must start with a user message")
        if turns and turns[-1][0] == "assistant":
            # Thinking is never switched on here, and then the API refuses thinking blocks in an
            # assistant turn in the final position (earlier turns may carry them).
            turns[-1] = (
                "assistant",
                [b for b in turns[-1][1] if b["type"] not in _THINKING_BLOCKS],
            )
        out: list[dict[str, Any]] = []
        for role, blocks in turns:
            if role == "user":
                blocks = [b for b in blocks if b["type"] == "tool_result"] + [
                    b for b in blocks if b["type"] != "tool_result"
                ]
            content: str | list[dict[str, Any]]
            if len(blocks) == 1 and blocks[0]["type"] == "text":
                content = blocks[0]["text"]
            elif not blocks:
                content = ""
            else:
                content = blocks
            out.append({"role": role, "content": content})
        return out

    def _blocks(self, message: Message, index: int) -> list[dict[str, Any]]:
        if message.role is Role.TOOL:
            attachment_blocks = [self._attachment_block(a) for a in message.attachments]
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            if attachment_blocks:
                text_blocks = [{"type": "text", "text": message.text}] if message.text else []
                result["content"] = text_blocks + attachment_blocks
            else:
                result["content"] = message.text
            return [result]
        if message.role is Role.ASSISTANT:
            if message.attachments:
                raise UnsupportedInput("anthropic: assistant messages cannot carry attachments")
            blocks: list[dict[str, Any]] = []
            for call in message.tool_calls:  # thinking first, as the API wants it
                thinking = read_provider_state(call, "anthropic").get("thinking")
                if isinstance(thinking, list):
                    blocks.extend(b for b in thinking if isinstance(b, dict))
            if message.text:
                blocks.append({"type": "text", "text": message.text})
            for call in message.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": tool_arguments(call.arguments_json, call.name),
                    }
                )
            return blocks
        # User: attachments first (Anthropic recommends images before the question), then text.
        blocks = [self._attachment_block(a) for a in message.attachments]
        if message.text or not blocks:
            blocks.append({"type": "text", "text": message.text})
        return blocks

    def _attachment_block(self, attachment: Attachment) -> dict[str, Any]:
        media = attachment.media_type.lower()
        inline = text_attachment(attachment)
        if inline is not None:
            return {"type": "text", "text": inline}
        if media in _IMAGE_TYPES:
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media, "data": b64(attachment.data)},
            }
        if media == "application/pdf":
            return {
                "type": "document",
                "source": {"type": "base64", "media_type": media, "data": b64(attachment.data)},
            }
        raise UnsupportedInput(
            f"anthropic: {attachment.modality} attachments are not supported "
            f"(media type {attachment.media_type})"
        )

    # -- complete responses --------------------------------------------------------------------

    def parse_response(self, body: bytes) -> ParsedResponse:
        data = load_json_object(body, "anthropic response body")
        if data.get("type") == "error":
            raise ProviderStreamError(error_from_object(data, 0))  # an error sent with a 200
        content = data.get("content")
        if not isinstance(content, list):
            raise MalformedResponse("anthropic response body has no content list")
        texts: list[str] = []
        calls: list[ToolCall] = []
        thinking: list[dict[str, Any]] = []
        for block in content:
            if not isinstance(block, dict):
                raise MalformedResponse("anthropic response content block is not an object")
            btype = block.get("type")
            if btype == "text":
                texts.append(as_str(block.get("text")))
            elif btype == "tool_use":
                if not as_str(block.get("id")) or not as_str(block.get("name")):
                    raise MalformedResponse("anthropic tool_use block lacks id or name")
                calls.append(
                    ToolCall(
                        id=block["id"],
                        name=block["name"],
                        arguments_json=_dump(block.get("input") or {}),
                    )
                )
            elif btype in _THINKING_BLOCKS:
                thinking.append(_thinking_block(block))
            # thinking and server tool blocks are not part of the answer
        calls = _with_thinking(calls, thinking)
        raw = as_str(data.get("stop_reason"))
        refused, detail = _refusal(raw)
        return ParsedResponse(
            text="".join(texts),
            tool_calls=tuple(calls),
            finish_reason=_FINISH_MAP.get(raw, FINISH_OTHER),
            raw_finish_reason=raw,
            usage=_usage(data.get("usage")),
            response_model=as_str(data.get("model")),
            provider_refusal=refused,
            refusal_detail=detail,
        )

    # -- errors --------------------------------------------------------------------------------

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> Failure:
        value = try_json(body)
        if isinstance(value, dict):
            error = error_from_object(value, status)
        else:
            error = Failure(
                outcome=outcome_for_status(status),
                message=plain_error_message(status, body),
                http_status=status,
            )
        retry_after = parse_retry_after(headers)
        return replace(error, retry_after_s=retry_after) if retry_after > 0 else error

    # -- streams -------------------------------------------------------------------------------

    def new_stream(self) -> AnthropicStream:
        return AnthropicStream()


def error_from_object(value: dict[str, Any], status: int) -> Failure:
    """``{"type": "error", "error": {"type", "message"}}`` (a body or a stream event)."""
    err = value.get("error")
    etype = message = ""
    if isinstance(err, dict):
        etype = as_str(err.get("type"))
        message = as_str(err.get("message"))
    message = message or (f"HTTP {status}" if status else "provider error")
    outcome = _ERROR_TYPES.get(etype)
    if outcome is None:
        effective = status or _ERROR_STATUS.get(etype, 500)
        outcome = classify_error(effective, message, (etype,))
    return Failure(
        outcome=outcome,
        message=truncate(message, MAX_ERROR_MESSAGE),
        http_status=status,
        provider_code=etype,
    )


@dataclass(slots=True)
class _Block:
    type: str
    id: str = ""
    name: str = ""
    initial_input: Any = None
    json_parts: list[str] = field(default_factory=list)  # tool_use input / thinking text
    signature: str = ""  # thinking
    data: str = ""  # redacted_thinking


class AnthropicStream:
    """Accumulates Messages API stream events.

    ``message_start`` gives the model and input usage; ``content_block_*`` events build text,
    ``tool_use`` blocks (a tool call is emitted, complete, at its ``content_block_stop``) and
    thinking blocks (kept, with their signature, on the turn's first tool call);
    ``message_delta`` gives ``stop_reason`` and the cumulative output usage; ``message_stop`` ends
    the stream; ``error`` raises :class:`ProviderStreamError`.
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: list[ToolCall] = []
        self._thinking: list[dict[str, Any]] = []  # complete thinking blocks, in order
        self._blocks: dict[int, _Block] = {}
        self._raw_usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._model = ""
        self._done = False
        self._started = False

    @property
    def finish_seen(self) -> bool:
        return self._done or self._stop_reason is not None

    @property
    def complete(self) -> bool:
        # message_delta carries both the stop reason and the final usage.
        return self.finish_seen

    def feed(self, event: SSEEvent) -> list[Delta]:
        data = event.data.strip()
        if not data:
            return []
        obj = load_json_object(data, "anthropic stream event")
        etype = as_str(obj.get("type")) or event.event
        if etype == "error":
            raise ProviderStreamError(error_from_object(obj, 0))
        if etype == "ping":
            return []
        if etype == "message_start":
            message = obj.get("message")
            if not isinstance(message, dict):
                raise MalformedResponse("anthropic message_start has no message object")
            self._started = True
            self._model = as_str(message.get("model"))
            if isinstance(message.get("usage"), dict):
                self._raw_usage.update(message["usage"])
            return []
        if etype == "content_block_start":
            return self._block_start(obj)
        if etype == "content_block_delta":
            return self._block_delta(obj)
        if etype == "content_block_stop":
            return self._block_stop(obj)
        if etype == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._stop_reason = delta["stop_reason"]
            usage = obj.get("usage")
            if isinstance(usage, dict):
                # Cumulative counts; newer API versions also repeat the input counts here.
                self._raw_usage.update({k: v for k, v in usage.items() if v is not None})
            return []
        if etype == "message_stop":
            self._done = True
            return []
        return []  # unknown event types are ignored, as Anthropic's versioning policy asks

    def _index(self, obj: dict[str, Any], what: str) -> int:
        index = obj.get("index")
        if not isinstance(index, int):
            raise MalformedResponse(f"anthropic {what} has no index")
        return index

    def _block_start(self, obj: dict[str, Any]) -> list[Delta]:
        index = self._index(obj, "content_block_start")
        block = obj.get("content_block")
        if not isinstance(block, dict):
            raise MalformedResponse("anthropic content_block_start has no content_block")
        btype = as_str(block.get("type"))
        self._blocks[index] = _Block(
            type=btype,
            id=as_str(block.get("id")),
            name=as_str(block.get("name")),
            initial_input=block.get("input"),
            json_parts=[as_str(block.get("thinking"))] if btype == "thinking" else [],
            signature=as_str(block.get("signature")),
            data=as_str(block.get("data")),
        )
        if btype == "text" and as_str(block.get("text")):
            self._text.append(block["text"])
            return [Delta(text=block["text"])]
        return []

    def _block_delta(self, obj: dict[str, Any]) -> list[Delta]:
        index = self._index(obj, "content_block_delta")
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            raise MalformedResponse("anthropic content_block_delta has no delta")
        block = self._blocks.get(index)
        if block is None:
            raise MalformedResponse("anthropic content_block_delta for a block that never started")
        dtype = delta.get("type")
        if dtype == "text_delta":
            text = as_str(delta.get("text"))
            if text:
                self._text.append(text)
                return [Delta(text=text)]
        elif dtype == "input_json_delta":
            block.json_parts.append(as_str(delta.get("partial_json")))
        elif dtype == "thinking_delta":
            block.json_parts.append(as_str(delta.get("thinking")))
        elif dtype == "signature_delta":
            block.signature += as_str(delta.get("signature"))
        # thinking is kept for the next turn, never part of the answer's text; citations_delta
        # is not used
        return []

    def _block_stop(self, obj: dict[str, Any]) -> list[Delta]:
        index = self._index(obj, "content_block_stop")
        block = self._blocks.get(index)
        if block is not None and block.type in _THINKING_BLOCKS:
            self._thinking.append(
                _thinking_block(
                    {
                        "type": block.type,
                        "thinking": "".join(block.json_parts),
                        "signature": block.signature,
                        "data": block.data,
                    }
                )
            )
            return []
        if block is None or block.type != "tool_use":
            return []
        raw = "".join(block.json_parts)
        if raw.strip():
            try:
                arguments = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise MalformedResponse("anthropic tool_use input JSON is invalid") from exc
        else:
            arguments = block.initial_input if isinstance(block.initial_input, dict) else {}
        if not block.id or not block.name:
            raise MalformedResponse("anthropic tool_use block lacks id or name")
        call = ToolCall(id=block.id, name=block.name, arguments_json=_dump(arguments))
        if not self._calls:
            call = _with_thinking([call], self._thinking)[0]
        self._calls.append(call)
        return [Delta(tool_call=call)]

    def finish(self) -> ParsedResponse:
        if not self.finish_seen:
            raise StreamIncomplete(
                "anthropic stream ended before message_delta stop_reason / message_stop"
            )
        raw = self._stop_reason or ""
        refused, detail = _refusal(raw)
        return ParsedResponse(
            text="".join(self._text),
            tool_calls=tuple(self._calls),
            finish_reason=_FINISH_MAP.get(raw, FINISH_OTHER),
            raw_finish_reason=raw,
            usage=_usage(self._raw_usage) if self._raw_usage else None,
            response_model=self._model,
            provider_refusal=refused,
            refusal_detail=detail,
        )
