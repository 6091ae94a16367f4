"""Small pure helpers shared by the adapters (one copy, not one per provider)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from uniwizard.config_types import BackendConfig
from uniwizard.providers.base import MAX_ERROR_MESSAGE, MalformedResponse, UnsupportedInput
from uniwizard.providers.outcomes import truncate
from uniwizard.types import Attachment, BlindRequest, Message, Role, ToolCall

EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def base_url(backend: BackendConfig) -> str:
    return backend.url.rstrip("/")


def request_headers(auth: dict[str, str], *, json_body: bool, stream: bool) -> dict[str, str]:
    """A provider's auth headers plus, for a JSON body, its content type and what we accept."""
    headers = dict(auth)
    if json_body:
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream" if stream else "application/json"
    return headers


def max_output_tokens(backend: BackendConfig, request: BlindRequest) -> int:
    """The request's output cap, or the backend's default when the request names none."""
    return request.max_output_tokens if request.max_output_tokens > 0 else backend.max_output_tokens


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_json_object(body: bytes | str, what: str) -> dict[str, Any]:
    """Parse a JSON object; MalformedResponse naming ``what`` (never the content) otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"{what} is not valid JSON") from exc
    except RecursionError:  # nested deeper than the parser's stack allows
        raise MalformedResponse(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise MalformedResponse(f"{what} is not a JSON object (got {type(value).__name__})")
    return value


def try_json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def tool_schema(parameters_json: str, tool_name: str) -> dict[str, Any]:
    """A tool's JSON Schema as an object; ``{}`` becomes an empty object schema."""
    try:
        schema = json.loads(parameters_json or "{}")
    except ValueError as exc:
        raise UnsupportedInput(f"tool {tool_name!r}: parameters are not valid JSON") from exc
    if not isinstance(schema, dict):
        raise UnsupportedInput(f"tool {tool_name!r}: parameters must be a JSON object schema")
    if not schema:
        return dict(EMPTY_OBJECT_SCHEMA)
    return schema


def tool_arguments(arguments_json: str, tool_name: str) -> dict[str, Any]:
    """A tool call's arguments as an object (Anthropic and Gemini send objects, not strings)."""
    try:
        args = json.loads(arguments_json or "{}")
    except ValueError as exc:
        raise UnsupportedInput(f"tool call {tool_name!r}: arguments are not valid JSON") from exc
    if not isinstance(args, dict):
        raise UnsupportedInput(f"tool call {tool_name!r}: arguments must be a JSON object")
    return args


def tool_name_for(messages: tuple[Message, ...], upto: int, tool_call_id: str) -> str:
    """The name of the tool call a tool message answers, searching backwards from ``upto``."""
    for message in reversed(messages[:upto]):
        if message.role is Role.ASSISTANT:
            for call in message.tool_calls:
                if call.id == tool_call_id:
                    return call.name
    raise UnsupportedInput(f"tool result answers an unknown tool call id {tool_call_id!r}")


def provider_state(provider: str, **fields: Any) -> str:
    """A tool call's opaque provider state: JSON naming the adapter that wrote it, so that only
    that adapter reads it back (a call replayed to another provider goes without it)."""
    return json.dumps({"provider": provider, **fields}, separators=(",", ":"), ensure_ascii=False)


def read_provider_state(call: ToolCall, provider: str) -> dict[str, Any]:
    """The fields ``provider`` stored on ``call``; {} when there are none, when another provider
    wrote them, or when they are not readable (state is opaque: never an error)."""
    if not call.provider_state:
        return {}
    value = try_json(call.provider_state)
    if not isinstance(value, dict) or value.get("provider") != provider:
        return {}
    return value


def text_attachment(attachment: Attachment) -> str | None:
    """Text attachments (text/*, JSON, XML) are inlined as text; None for binary media types.

    The attachment's file name is not sent (it is not scrubbed content and may identify the
    sender); the media type is.
    """
    media = attachment.media_type.lower()
    if media.startswith("text/") or media in {"application/json", "application/xml"}:
        body = attachment.data.decode("utf-8", errors="replace")
        return f'<attachment type="{media}">\n{body}\n</attachment>'
    return None


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")


def plain_error_message(status: int, body: bytes | str) -> str:
    """A message for a non-JSON error body (a proxy's HTML page, plain text): the HTML title or
    the text without tags, prefixed with the status, at most MAX_ERROR_MESSAGE characters."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    title = _TITLE_RE.search(text)
    if title:
        text = title.group(1)
    else:
        text = _TAG_RE.sub(" ", text)
    text = " ".join(text.split())
    prefix = f"HTTP {status}" if status else "provider error"
    return truncate(f"{prefix}: {text}" if text else prefix, MAX_ERROR_MESSAGE)
