"""OpenAI Chat Completions (``POST {url}/chat/completions``).

Also the base of :mod:`uniwizard.providers.openai_compatible` (llama.cpp, Kimi, Grok), which
overrides a few class attributes only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from uniwizard.config_types import BackendConfig
from uniwizard.providers._common import (
    as_int,
    as_str,
    b64,
    base_url,
    load_json_object,
    max_output_tokens,
    plain_error_message,
    request_headers,
    text_attachment,
    tool_schema,
    try_json,
)
from uniwizard.providers.base import (
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_OTHER,
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
    parse_duration,
    parse_retry_after,
    truncate,
)
from uniwizard.types import (
    Attachment,
    BlindRequest,
    Message,
    Outcome,
    OutputFormat,
    ResponseFormat,
    Role,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from uniwizard.providers.sse import SSEEvent

_FINISH_MAP = {
    "stop": FINISH_STOP,
    "length": FINISH_LENGTH,
    "tool_calls": FINISH_TOOL_CALLS,
    "function_call": FINISH_TOOL_CALLS,  # legacy functions API
    "content_filter": FINISH_CONTENT_FILTER,
}

_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}

# Error ``type`` / ``code`` values that decide the outcome on their own. Covers OpenAI, the
# llama.cpp server (``type`` carries the meaning, ``code`` is the HTTP status as an int), Moonshot
# and xAI.
_CODE_OUTCOMES: dict[str, Outcome] = {
    "rate_limit_exceeded": Outcome.RATE_LIMITED,
    "rate_limit_error": Outcome.RATE_LIMITED,
    "rate_limit_reached_error": Outcome.RATE_LIMITED,  # Moonshot
    "insufficient_quota": Outcome.RATE_LIMITED,
    "exceeded_current_quota_error": Outcome.RATE_LIMITED,  # Moonshot
    "invalid_api_key": Outcome.AUTH,
    "invalid_authentication": Outcome.AUTH,
    "invalid_authentication_error": Outcome.AUTH,  # Moonshot
    "authentication_error": Outcome.AUTH,  # llama.cpp
    "permission_error": Outcome.AUTH,  # llama.cpp
    "permission_denied_error": Outcome.AUTH,
    "unavailable_error": Outcome.OVERLOADED,  # llama.cpp: "Loading model"
    "engine_overloaded_error": Outcome.OVERLOADED,  # Moonshot
    "not_supported_error": Outcome.BAD_REQUEST,  # llama.cpp 501
}

_TRY_AGAIN_RE = re.compile(r"try again in\s+((?:\d+(?:\.\d+)?\s*(?:ms|h|m|s)\s*)+)", re.IGNORECASE)


def _finish(raw: str, has_tool_calls: bool) -> str:
    normalised = _FINISH_MAP.get(raw, FINISH_OTHER)
    # Some OpenAI-compatible servers report "stop" for an answer that is tool calls.
    if has_tool_calls and normalised == FINISH_STOP:
        return FINISH_TOOL_CALLS
    return normalised


def _usage(value: Any) -> Usage | None:
    """A ``usage`` object. OpenAI already counts as the GenAI conventions do: ``prompt_tokens``
    includes ``prompt_tokens_details.cached_tokens`` and ``completion_tokens`` includes
    ``completion_tokens_details.reasoning_tokens`` (billed as output). Compatible servers put
    their cache hits in the same place (xAI, Groq, Mistral), at the top level (Moonshot
    ``cached_tokens``) or as ``prompt_cache_hit_tokens`` (DeepSeek); none reports cache writes."""
    if not isinstance(value, dict):
        return None
    details = value.get("prompt_tokens_details")
    cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = (
        cached or as_int(value.get("cached_tokens")) or as_int(value.get("prompt_cache_hit_tokens"))
    )
    out_details = value.get("completion_tokens_details")
    reasoning = as_int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    return Usage(
        input_tokens=as_int(value.get("prompt_tokens")),
        output_tokens=as_int(value.get("completion_tokens")),
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
    )


def _chunk_usage(chunk: dict[str, Any]) -> Usage | None:
    """Usage of a response or stream chunk: ``usage``, else Groq's ``x_groq.usage`` (where
    Groq's older streams carry it, on the last chunk)."""
    usage = _usage(chunk.get("usage"))
    if usage is None and isinstance(chunk.get("x_groq"), dict):
        usage = _usage(chunk["x_groq"].get("usage"))
    return usage


def _content_text(content: Any) -> str:
    """``message.content``: a string, null, or (some compatible servers) a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            as_str(part.get("text"))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "output_text")
        )
    return ""


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, dict):  # some compatible servers send an object
        return json.dumps(arguments, separators=(",", ":"))
    return ""


class OpenAIAdapter:
    """Chat Completions for OpenAI itself."""

    name: str = "openai"
    # OpenAI deprecated max_tokens for max_completion_tokens (required by reasoning models).
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    include_stream_usage: ClassVar[bool] = True

    # -- requests -----------------------------------------------------------------------------

    def _headers(
        self, api_key: str | None, *, json_body: bool, stream: bool = False
    ) -> dict[str, str]:
        auth = {"authorization": f"Bearer {api_key}"} if api_key is not None else {}
        return request_headers(auth, json_body=json_body, stream=stream)

    def build_request(
        self, backend: BackendConfig, request: BlindRequest, api_key: str | None, *, stream: bool
    ) -> HttpRequest:
        body: dict[str, Any] = {
            "model": backend.model,
            "messages": self._messages(request),
            self.max_tokens_field: max_output_tokens(backend, request),
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool_schema(tool.parameters_json, tool.name),
                    },
                }
                for tool in request.tools
            ]
        if request.response_format is not None and request.response_format.structured:
            body["response_format"] = response_format(request.response_format)
        if stream:
            body["stream"] = True
            if self.include_stream_usage:
                body["stream_options"] = {"include_usage": True}
        return HttpRequest(
            method="POST",
            url=f"{base_url(backend)}/chat/completions",
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
        out: list[dict[str, Any]] = []
        if request.system_prompt:
            out.append({"role": "system", "content": request.system_prompt})
        for message in request.messages:
            out.append(self._message(message))
        return out

    def _message(self, message: Message) -> dict[str, Any]:
        if message.role is Role.USER:
            return {"role": "user", "content": self._user_content(message)}
        if message.role is Role.ASSISTANT:
            if message.attachments:
                raise UnsupportedInput(f"{self.name}: assistant messages cannot carry attachments")
            entry: dict[str, Any] = {"role": "assistant", "content": message.text or None}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments_json or "{}"},
                    }
                    for call in message.tool_calls
                ]
            elif entry["content"] is None:
                entry["content"] = ""
            return entry
        # Role.TOOL: tool messages take text only; text attachments are inlined.
        text = message.text
        for attachment in message.attachments:
            inline = text_attachment(attachment)
            if inline is None:
                raise UnsupportedInput(
                    f"{self.name}: tool results cannot carry {attachment.media_type} attachments"
                )
            text = f"{text}\n{inline}" if text else inline
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": text}

    def _user_content(self, message: Message) -> str | list[dict[str, Any]]:
        if not message.attachments:
            return message.text
        parts: list[dict[str, Any]] = []
        if message.text:
            parts.append({"type": "text", "text": message.text})
        parts.extend(self._attachment_part(a) for a in message.attachments)
        return parts

    def _attachment_part(self, attachment: Attachment) -> dict[str, Any]:
        media = attachment.media_type.lower()
        inline = text_attachment(attachment)
        if inline is not None:
            return {"type": "text", "text": inline}
        if attachment.modality == "image":
            return {
                "type": "image_url",
                "image_url": {"url": f"data:{media};base64,{b64(attachment.data)}"},
            }
        if attachment.modality == "audio":
            fmt = _AUDIO_FORMATS.get(media)
            if fmt is None:
                raise UnsupportedInput(
                    f"{self.name}: audio must be wav or mp3, not {attachment.media_type}"
                )
            return {
                "type": "input_audio",
                "input_audio": {"data": b64(attachment.data), "format": fmt},
            }
        if media == "application/pdf":
            return {
                "type": "file",
                "file": {
                    "filename": "attachment.pdf",
                    "file_data": f"data:{media};base64,{b64(attachment.data)}",
                },
            }
        raise UnsupportedInput(f"{self.name}: unsupported attachment type {attachment.media_type}")

    # -- complete responses --------------------------------------------------------------------

    def parse_response(self, body: bytes) -> ParsedResponse:
        data = load_json_object(body, f"{self.name} response body")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            if "error" in data:  # an error sent with a 200 (OpenRouter does this)
                raise ProviderStreamError(self.error_from_object(data, 0))
            raise MalformedResponse(f"{self.name} response body has no choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise MalformedResponse(f"{self.name} response choice has no message object")
        tool_calls = self._tool_calls(message.get("tool_calls"))
        text = _content_text(message.get("content"))
        refusal = as_str(message.get("refusal"))
        raw = as_str(choice.get("finish_reason"))
        finish = _finish(raw, bool(tool_calls))
        refused, detail = False, ""
        if refusal:
            refused, detail = True, f"{self.name} message.refusal"
            text = text or refusal  # the refusal's own words are the answer's text
        elif finish == FINISH_CONTENT_FILTER:
            refused, detail = True, f"{self.name} finish_reason=content_filter"
        return ParsedResponse(
            text=text,
            tool_calls=tool_calls,
            finish_reason=finish,
            raw_finish_reason=raw,
            usage=_chunk_usage(data),
            response_model=as_str(data.get("model")),
            provider_refusal=refused,
            refusal_detail=detail,
        )

    def _tool_calls(self, value: Any) -> tuple[ToolCall, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise MalformedResponse(f"{self.name} message.tool_calls is not a list")
        calls: list[ToolCall] = []
        for index, item in enumerate(value):
            function = item.get("function") if isinstance(item, dict) else None
            if not isinstance(function, dict) or not as_str(function.get("name")):
                raise MalformedResponse(f"{self.name} tool call {index} has no function name")
            calls.append(
                ToolCall(
                    id=as_str(item.get("id")) or f"call_{index}",
                    name=function["name"],
                    arguments_json=_arguments_text(function.get("arguments")) or "{}",
                )
            )
        return tuple(calls)

    # -- errors --------------------------------------------------------------------------------

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> Failure:
        retry_after = parse_retry_after(headers)
        error = self.error_from_body(status, body)
        return replace(error, retry_after_s=retry_after) if retry_after > 0 else error

    def error_from_body(self, status: int, body: bytes | str) -> Failure:
        value = try_json(body)
        if isinstance(value, dict):
            return self.error_from_object(value, status)
        return Failure(
            outcome=outcome_for_status(status) if status else Outcome.SERVER_ERROR,
            message=plain_error_message(status, body),
            http_status=status,
        )

    def error_from_object(self, value: dict[str, Any], status: int) -> Failure:
        """An error object: ``{"error": {"message", "type", "param", "code"}}`` and variants."""
        err = value.get("error", value)
        message, etype, code = "", "", ""
        if isinstance(err, dict):
            message = as_str(err.get("message"))
            etype = as_str(err.get("type"))
            raw_code = err.get("code")
            if isinstance(raw_code, str):
                code = raw_code
            elif isinstance(raw_code, int) and not status:
                status = raw_code  # llama.cpp puts the HTTP status in code (useful in streams)
            metadata = err.get("metadata")
            raw = as_str(metadata.get("raw")) if isinstance(metadata, dict) else ""
            if raw and raw not in message:
                # OpenRouter: "Provider returned error" plus the upstream's own words in raw
                message = f"{message}: {raw}" if message else raw
        elif isinstance(err, str):
            message = err  # {"error": "..."}
        if not message:
            message = as_str(value.get("message")) or as_str(value.get("detail"))
        if not message:
            message = f"HTTP {status}" if status else "provider error"
        outcome = _CODE_OUTCOMES.get(code) or _CODE_OUTCOMES.get(etype)
        if outcome is None:
            # No status inside a stream: an invalid request is the request's fault, the rest
            # the server's.
            effective = status or (400 if etype == "invalid_request_error" else 500)
            outcome = classify_error(effective, message, (code, etype))
        retry_after = 0.0
        match = _TRY_AGAIN_RE.search(message)
        if match and outcome is Outcome.RATE_LIMITED:
            retry_after = parse_duration(match.group(1))
        return Failure(
            outcome=outcome,
            message=truncate(message, MAX_ERROR_MESSAGE),
            http_status=status,
            retry_after_s=retry_after,
            provider_code=code or etype,
        )

    # -- streams -------------------------------------------------------------------------------

    def new_stream(self) -> OpenAIStream:
        return OpenAIStream(self)


@dataclass(slots=True)
class _ToolSlot:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIStream:
    """Accumulates ``chat.completion.chunk`` events.

    Tool-call fragments are merged by ``index`` and emitted as complete ToolCalls when the
    ``finish_reason`` arrives (or at ``[DONE]`` if none did). Usage comes from the usage chunk
    (``stream_options.include_usage``: empty ``choices``), from a ``usage`` field on any chunk
    (llama.cpp) or on the choice (Moonshot).
    """

    def __init__(self, adapter: OpenAIAdapter) -> None:
        self._adapter = adapter
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._slots: dict[int, _ToolSlot] = {}
        self._emitted = False
        self._raw_finish: str | None = None
        self._usage: Usage | None = None
        self._model = ""
        self._done = False

    @property
    def finish_seen(self) -> bool:
        return self._done or self._raw_finish is not None

    @property
    def complete(self) -> bool:
        return self._done or (self._raw_finish is not None and self._usage is not None)

    def feed(self, event: SSEEvent) -> list[Delta]:
        name = self._adapter.name
        data = event.data.strip()
        if data == "[DONE]":
            self._done = True
            return self._emit_tool_calls()
        if self._done or not data:
            return []
        chunk = load_json_object(data, f"{name} stream event")
        if "error" in chunk and "choices" not in chunk:
            raise ProviderStreamError(self._adapter.error_from_object(chunk, 0))
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._model = chunk["model"]
        usage = _chunk_usage(chunk)
        if usage is not None:
            self._usage = usage
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise MalformedResponse(f"{name} stream event: choices is not a list")
        deltas: list[Delta] = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise MalformedResponse(f"{name} stream event: a choice is not an object")
            if as_int(choice.get("index")) != 0:
                continue  # only the first choice is used
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise MalformedResponse(f"{name} stream event: delta is not an object")
            content = _content_text(delta.get("content"))
            if content:
                self._text.append(content)
                deltas.append(Delta(text=content))
            refusal = as_str(delta.get("refusal"))
            if refusal:
                self._refusal.append(refusal)
            fragments = delta.get("tool_calls")
            if fragments is not None:
                self._merge_tool_calls(fragments)
            choice_usage = _usage(choice.get("usage"))
            if choice_usage is not None:
                self._usage = choice_usage
            raw = choice.get("finish_reason")
            if isinstance(raw, str) and raw:
                self._raw_finish = raw
                deltas.extend(self._emit_tool_calls())
        return deltas

    def _merge_tool_calls(self, fragments: Any) -> None:
        name = self._adapter.name
        if not isinstance(fragments, list):
            raise MalformedResponse(f"{name} stream event: delta.tool_calls is not a list")
        for fragment in fragments:
            if not isinstance(fragment, dict):
                raise MalformedResponse(
                    f"{name} stream event: a tool call fragment is not an object"
                )
            index = fragment.get("index")
            frag_id = as_str(fragment.get("id"))
            if not isinstance(index, int):
                # Servers that omit the index: a new id starts a new call.
                known = [i for i, s in self._slots.items() if s.id == frag_id]
                if known:
                    index = known[0]
                elif frag_id or not self._slots:
                    index = len(self._slots)
                else:
                    index = max(self._slots)
            slot = self._slots.setdefault(index, _ToolSlot())
            if frag_id and not slot.id:
                slot.id = frag_id
            function = fragment.get("function")
            if isinstance(function, dict):
                fname = as_str(function.get("name"))
                if fname and not slot.name:
                    slot.name = fname
                args = function.get("arguments")
                if isinstance(args, dict):
                    slot.arguments = [_arguments_text(args)]
                elif isinstance(args, str):
                    slot.arguments.append(args)

    def _tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(
                id=slot.id or f"call_{index}",
                name=slot.name,
                arguments_json="".join(slot.arguments) or "{}",
            )
            for index, slot in sorted(self._slots.items())
        )

    def _emit_tool_calls(self) -> list[Delta]:
        if self._emitted:
            return []
        self._emitted = True
        calls = self._tool_calls()
        for call in calls:
            if not call.name:
                raise MalformedResponse(f"{self._adapter.name} stream: a tool call has no name")
        return [Delta(tool_call=call) for call in calls]

    def finish(self) -> ParsedResponse:
        name = self._adapter.name
        if not self.finish_seen:
            raise StreamIncomplete(f"{name} stream ended before a finish_reason or [DONE]")
        calls = self._tool_calls()
        raw = self._raw_finish or ""
        finish = _finish(raw, bool(calls))
        text = "".join(self._text)
        refusal = "".join(self._refusal)
        refused, detail = False, ""
        if refusal:
            refused, detail = True, f"{name} delta.refusal"
            text = text or refusal
        elif finish == FINISH_CONTENT_FILTER:
            refused, detail = True, f"{name} finish_reason=content_filter"
        return ParsedResponse(
            text=text,
            tool_calls=calls,
            finish_reason=finish,
            raw_finish_reason=raw,
            usage=self._usage,
            response_model=self._model,
            provider_refusal=refused,
            refusal_detail=detail,
        )


def response_format(f: ResponseFormat) -> dict[str, Any]:
    """OpenAI's ``response_format`` for a structured output."""
    if f.type is OutputFormat.JSON_OBJECT:
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": f.name or "answer", "schema": schema_of(f)}
    if f.strict:
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}
