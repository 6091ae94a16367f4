"""Anthropic Messages dialect.

Paths: ``POST /{target}/v1/messages``, ``GET /{target}/v1/models`` (a ``/v1/models``
request is treated as Anthropic when it carries ``anthropic-version`` or ``x-api-key``).
Auth: ``x-api-key`` or ``Authorization: Bearer <key>`` (recent official SDKs send
the API key as a Bearer token; 401 ``authentication_error`` when both are missing),
and ``anthropic-version`` (400 ``invalid_request_error`` when missing, as the real
API does).
Structured output: ``output_config.format`` ``{"type": "json_schema", "schema": {...}}``
(``output_config.effort`` is accepted and ignored), or the older beta ``output_format``
of the same shape; not both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from uniwizard_sim import sse
from uniwizard_sim.common import (
    Answer,
    Conversation,
    ErrorReply,
    Finish,
    Ids,
    OutputFormat,
    StreamEvent,
    ToolDef,
    retry_headers,
)

NAME = "anthropic"
NO_AUTH_TARGETS = frozenset({"local"})
DEFAULT_MODELS: tuple[str, ...] = (
    "claude-sonnet-4-20250514",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1-20250805",
    "claude-3-5-haiku-20241022",
)
BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
)
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
CONTENT_FILTER_MESSAGE = "Output blocked by content filtering policy"
_FINISH: dict[Finish, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool": "tool_use",
    "refusal": "refusal",
    "content_filter": "refusal",
    "safety": "refusal",
    "blocked": "refusal",
}


def error(
    status: int, type_: str, message: str, headers: dict[str, str] | None = None
) -> ErrorReply:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return ErrorReply(status, body, headers or {})


def _bad(message: str) -> ErrorReply:
    return error(400, "invalid_request_error", message)


def auth_error(
    headers: Mapping[str, str], query: Mapping[str, str], target: str
) -> ErrorReply | None:
    if target in NO_AUTH_TARGETS:
        return None
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer" and bool(token.strip())
    if not headers.get("x-api-key", "").strip() and not bearer:
        return error(401, "authentication_error", "x-api-key header is required")
    if not headers.get("anthropic-version", "").strip():
        return _bad("anthropic-version: header is required")
    return None


def invalid_json() -> ErrorReply:
    return _bad("There was an issue with your request body: invalid JSON")


def _block(
    block: Any, where: str, role: str, texts: list[str], user_texts: list[str]
) -> int | ErrorReply:
    """Validate one content block → attachments it carries, or an error."""
    if not isinstance(block, dict):
        return _bad(f"{where}: Input should be a valid dictionary or object")
    btype = block.get("type")
    if btype not in BLOCK_TYPES:
        tags = ", ".join(f"'{t}'" for t in BLOCK_TYPES)
        return _bad(
            f"{where}: Input tag '{btype}' found using 'type' does not match any of the "
            f"expected tags: {tags}"
        )
    if btype == "text":
        text = block.get("text")
        if not isinstance(text, str):
            return _bad(f"{where}.text.text: Field required")
        texts.append(text)
        if role == "user":
            user_texts.append(text)
        return 0
    if btype in ("image", "document"):
        src = block.get("source")
        if not isinstance(src, dict):
            return _bad(f"{where}.{btype}.source: Field required")
        stype = src.get("type")
        if stype == "base64":
            media = src.get("media_type")
            if media is None:
                return _bad(f"{where}.{btype}.source.base64.media_type: Field required")
            if btype == "image" and media not in IMAGE_MEDIA_TYPES:
                allowed = ", ".join(f"'{m}'" for m in IMAGE_MEDIA_TYPES[:-1])
                return _bad(
                    f"{where}.{btype}.source.base64.media_type: Input should be {allowed} or "
                    f"'{IMAGE_MEDIA_TYPES[-1]}'"
                )
            if not isinstance(src.get("data"), str) or not src.get("data"):
                return _bad(f"{where}.{btype}.source.base64.data: Field required")
        elif stype == "url":
            if not isinstance(src.get("url"), str) or not src.get("url"):
                return _bad(f"{where}.{btype}.source.url.url: Field required")
        elif not (btype == "document" and stype in ("text", "content", "file")):
            return _bad(
                f"{where}.{btype}.source: Input tag '{stype}' found using 'type' does not match "
                "any of the expected tags: 'base64', 'url'"
            )
        if role != "user":
            return _bad(f"{where}: {btype} blocks are only allowed in user messages")
        return 1
    if btype == "tool_result":
        if not block.get("tool_use_id"):
            return _bad(f"{where}.tool_result.tool_use_id: Field required")
        content = block.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for item in content:
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    texts.append(item["text"])
        return 0
    if btype == "tool_use":
        if not block.get("id") or not block.get("name"):
            return _bad(f"{where}.tool_use.id: Field required")
    return 0


def _tools(raw: Any) -> tuple[ToolDef, ...] | ErrorReply:
    if not isinstance(raw, list):
        return _bad("tools: Input should be a valid list")
    out: list[ToolDef] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            return _bad(f"tools.{i}: Input should be a valid dictionary or object")
        if tool.get("type") not in (None, "custom"):
            continue  # server tools (web_search, ...) carry no input_schema
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            return _bad(f"tools.{i}.custom.name: Field required")
        schema = tool.get("input_schema")
        if schema is None:
            return _bad(f"tools.{i}.custom.input_schema: Field required")
        if not isinstance(schema, dict):
            return _bad(f"tools.{i}.custom.input_schema: Input should be a valid dictionary")
        out.append(ToolDef(name, schema))
    return tuple(out)


def _system_texts(system: Any) -> list[str] | ErrorReply:
    if system is None:
        return []
    if isinstance(system, str):
        return [system] if system else []
    if isinstance(system, list):
        out: list[str] = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                return _bad(f"system.{i}.type: Input should be 'text'")
            text = block.get("text")
            if not isinstance(text, str):
                return _bad(f"system.{i}.text: Field required")
            out.append(text)
        return out
    return _bad("system: Input should be a valid string")


def _output_format(body: dict[str, Any]) -> OutputFormat | ErrorReply | None:
    """``output_config.format`` (or the beta ``output_format``) → the JSON output asked for."""
    config = body.get("output_config")
    fmt: Any = None
    where = "output_config.format"
    if config is not None:
        if not isinstance(config, dict):
            return _bad("output_config: Input should be a valid dictionary or object")
        fmt = config.get("format")
    if body.get("output_format") is not None:
        if fmt is not None:
            return _bad(
                "output_format: cannot be combined with output_config.format; use "
                "output_config.format only"
            )
        fmt, where = body["output_format"], "output_format"
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        return _bad(f"{where}: Input should be a valid dictionary or object")
    if fmt.get("type") is None:
        return _bad(f"{where}.type: Field required")
    if fmt["type"] != "json_schema":
        return _bad(f"{where}.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if schema is None:
        return _bad(f"{where}.schema: Field required")
    if not isinstance(schema, dict):
        return _bad(f"{where}.schema: Input should be a valid dictionary")
    return OutputFormat(schema)


def parse_request(
    body: Any, *, model: str | None = None, stream: bool = False
) -> Conversation | ErrorReply:
    """Validate a Messages API request like the Anthropic API does."""
    del model, stream
    if not isinstance(body, dict):
        return invalid_json()
    for field in ("model", "max_tokens", "messages"):
        if body.get(field) is None:
            return _bad(f"{field}: Field required")
    mdl = body["model"]
    if not isinstance(mdl, str) or not mdl:
        return _bad("model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return _bad("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        return _bad("max_tokens: Input should be greater than or equal to 1")
    msgs = body["messages"]
    if not isinstance(msgs, list):
        return _bad("messages: Input should be a valid list")
    if not msgs:
        return _bad("messages: at least one message is required")
    system = _system_texts(body.get("system"))
    if isinstance(system, ErrorReply):
        return system
    texts: list[str] = list(system)
    last_user = ""
    attachments = 0
    prev_role: str | None = None
    for i, msg in enumerate(msgs):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            return _bad(f"{where}: Input should be a valid dictionary or object")
        role = msg.get("role")
        if role == "system":
            return _bad(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            return _bad(f"{where}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            return _bad('messages: first message must use the "user" role')
        if role == prev_role:
            return _bad(
                'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{role}" roles in a row'
            )
        prev_role = role
        content = msg.get("content")
        is_final_assistant = role == "assistant" and i == len(msgs) - 1
        if content is None:
            return _bad(f"{where}.content: Field required")
        if isinstance(content, str):
            if not content and not is_final_assistant:
                return _bad(
                    f"{where}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
            texts.append(content)
            if role == "user":
                last_user = content
        elif isinstance(content, list):
            if not content and not is_final_assistant:
                return _bad(
                    f"{where}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
            user_texts: list[str] = []
            for j, block in enumerate(content):
                res = _block(block, f"{where}.content.{j}", role, texts, user_texts)
                if isinstance(res, ErrorReply):
                    return res
                attachments += res
            if role == "user":
                last_user = "\n".join(user_texts)
        else:
            return _bad(f"{where}.content: Input should be a valid string or list")
    tools: tuple[ToolDef, ...] = ()
    if body.get("tools") is not None:
        parsed = _tools(body["tools"])
        if isinstance(parsed, ErrorReply):
            return parsed
        tools = parsed
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        tools = ()
    stream_flag = body.get("stream", False)
    if not isinstance(stream_flag, bool):
        return _bad("stream: Input should be a valid boolean")
    output = _output_format(body)
    if isinstance(output, ErrorReply):
        return output
    return Conversation(
        model=mdl,
        prompt_texts=tuple(texts),
        last_user_text=last_user,
        attachments=attachments,
        tools=tools,
        stream=stream_flag,
        include_usage=True,
        max_tokens=max_tokens,
        output=output,
    )


def _usage(answer: Answer, output_tokens: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": answer.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": answer.completion_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _content(answer: Answer) -> list[dict[str, Any]]:
    if answer.tool_call is not None:
        call = answer.tool_call
        return [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}]
    if answer.text:
        return [{"type": "text", "text": answer.text}]
    return []


def build_response(conv: Conversation, answer: Answer, ids: Ids) -> dict[str, Any]:
    return {
        "id": f"msg_{ids.suffix}",
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": _content(answer),
        "stop_reason": _FINISH[answer.finish],
        "stop_sequence": None,
        "usage": _usage(answer),
    }


def stream_events(conv: Conversation, answer: Answer, ids: Ids) -> list[StreamEvent]:
    start = {
        "type": "message_start",
        "message": {
            "id": f"msg_{ids.suffix}",
            "type": "message",
            "role": "assistant",
            "model": conv.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(answer, output_tokens=1),
        },
    }
    events = [StreamEvent(sse.named("message_start", start), "meta")]
    call = answer.tool_call
    block: dict[str, Any] | None = None
    pieces: list[dict[str, Any]] = []
    if call is not None:
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        args = json.dumps(call.arguments)
        step = max(1, len(args) // 3 + 1)
        pieces = [{"type": "input_json_delta", "partial_json": ""}] + [
            {"type": "input_json_delta", "partial_json": args[k : k + step]}
            for k in range(0, len(args), step)
        ]
    elif answer.text:
        block = {"type": "text", "text": ""}
        pieces = [{"type": "text_delta", "text": p} for p in answer.chunks]
    if block is not None:
        events.append(
            StreamEvent(
                sse.named(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": block},
                ),
                "meta",
            )
        )
    events.append(StreamEvent(sse.named("ping", {"type": "ping"}), "meta"))
    for delta in pieces:
        events.append(
            StreamEvent(
                sse.named(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                ),
                "content",
            )
        )
    if block is not None:
        events.append(
            StreamEvent(
                sse.named("content_block_stop", {"type": "content_block_stop", "index": 0}),
                "end",
            )
        )
    delta_evt = {
        "type": "message_delta",
        "delta": {"stop_reason": _FINISH[answer.finish], "stop_sequence": None},
        "usage": {"output_tokens": answer.completion_tokens},
    }
    events.append(StreamEvent(sse.named("message_delta", delta_evt), "end"))
    events.append(StreamEvent(sse.named("message_stop", {"type": "message_stop"}), "done"))
    return events


_STATUS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
        "see the response headers for current usage. Please reduce the prompt length or the "
        "maximum tokens requested, or try again later.",
    ),
    500: ("api_error", "Internal server error"),
    502: ("api_error", "Bad gateway"),
    503: ("overloaded_error", "Overloaded"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def status_error(
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
    retry_after_ms: int | None = None,
    model: str = "",
) -> ErrorReply:
    headers = retry_headers(retry_after, retry_after_ms)
    if status == 400 and code == "context_length_exceeded":
        return error(
            400,
            "invalid_request_error",
            message or "prompt is too long: 215000 tokens > 200000 maximum",
            headers,
        )
    default_type = "invalid_request_error" if status < 500 else "api_error"
    type_, default_message = _STATUS.get(status, (default_type, "Error"))
    return error(status, type_, message or default_message, headers)


def content_filter_error(message: str | None) -> ErrorReply | None:
    return _bad(message or CONTENT_FILTER_MESSAGE)


def stream_error_event(err: ErrorReply) -> bytes:
    return sse.named("error", err.body)


MALFORMED_BODY = (
    b'{"id":"msg_sim","type":"message","role":"assistant","content":[{"type":"text","text":'
    b'"Simulated answer'
)
MALFORMED_FRAME = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n'


def not_found(path: str) -> ErrorReply:
    return error(404, "not_found_error", f"Not Found: {path}")


def _display(model: str) -> str:
    return " ".join(p.capitalize() for p in model.split("-") if not p.isdigit() or len(p) < 8)


def list_models(models: list[str] | tuple[str, ...]) -> dict[str, Any]:
    data = [
        {
            "type": "model",
            "id": m,
            "display_name": _display(m),
            "created_at": "2025-05-14T00:00:00Z",
        }
        for m in models
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def model_info(model: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model,
        "display_name": _display(model),
        "created_at": "2025-05-14T00:00:00Z",
    }
