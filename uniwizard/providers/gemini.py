"""Google Gemini API: ``POST {url}/models/{model}:generateContent`` / ``:streamGenerateContent``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
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
    tool_name_for,
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
    Role,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from uniwizard.providers.sse import SSEEvent

# finishReason values that mean the provider blocked the answer.
_BLOCKED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_FINISH_MAP = {
    "STOP": FINISH_STOP,
    "MAX_TOKENS": FINISH_LENGTH,
    **dict.fromkeys(_BLOCKED, FINISH_CONTENT_FILTER),
}

_STATUS_OUTCOMES: dict[str, Outcome] = {
    "RESOURCE_EXHAUSTED": Outcome.RATE_LIMITED,
    "UNAVAILABLE": Outcome.OVERLOADED,
    "INTERNAL": Outcome.SERVER_ERROR,
    "UNKNOWN": Outcome.SERVER_ERROR,
    # The provider gave up on its own deadline: retrying the same call would wait again.
    "DEADLINE_EXCEEDED": Outcome.TIMEOUT,
    "UNAUTHENTICATED": Outcome.AUTH,
    "PERMISSION_DENIED": Outcome.AUTH,
    "NOT_FOUND": Outcome.BAD_REQUEST,
}

# The JSON Schema keywords Gemini's ``parameters`` (an OpenAPI-subset Schema) understands. A tool
# schema using anything else is sent whole as ``parametersJsonSchema`` instead.
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "properties",
        "required",
        "anyOf",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "pattern",
        "default",
        "example",
        "propertyOrdering",
        "minProperties",
        "maxProperties",
    }
)


def _schema_fits(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            return False
        if key == "type" and not isinstance(value, str):
            return False
        if key == "properties":
            if not isinstance(value, dict) or not all(_schema_fits(v) for v in value.values()):
                return False
        elif key == "items" and not _schema_fits(value):
            return False
        elif key == "anyOf" and (
            not isinstance(value, list) or not all(_schema_fits(v) for v in value)
        ):
            return False
    return True


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _usage(value: Any) -> Usage | None:
    """``usageMetadata``. ``promptTokenCount`` INCLUDES ``cachedContentTokenCount`` but not
    ``toolUsePromptTokenCount`` (tokens of tool results, e.g. search grounding, billed as
    input); ``candidatesTokenCount`` EXCLUDES ``thoughtsTokenCount`` (billed as output). Ours,
    as the GenAI conventions ask: input = prompt + tool use, output = candidates + thoughts."""
    if not isinstance(value, dict):
        return None
    thoughts = as_int(value.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=as_int(value.get("promptTokenCount"))
        + as_int(value.get("toolUsePromptTokenCount")),
        output_tokens=as_int(value.get("candidatesTokenCount")) + thoughts,
        cached_input_tokens=as_int(value.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


# What the API accepts in place of a thought signature for a function call it did not make
# itself (a turn from another provider, or state dropped): its documented validator bypass,
# which works on the Gemini API and on Vertex AI alike. Gemini 3 rejects the first function call
# of a step without a signature.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def _signature(part: dict[str, Any]) -> str:
    return as_str(part.get("thoughtSignature")) or as_str(part.get("thought_signature"))


def _finish(raw: str, has_calls: bool) -> str:
    normalised = _FINISH_MAP.get(raw, FINISH_OTHER)
    # Gemini reports STOP for a turn that ends in function calls.
    if has_calls and normalised == FINISH_STOP:
        return FINISH_TOOL_CALLS
    return normalised


def _block_reason(data: dict[str, Any]) -> str:
    feedback = data.get("promptFeedback")
    return as_str(feedback.get("blockReason")) if isinstance(feedback, dict) else ""


class _Accumulator:
    """Shared by complete responses and streams (a stream chunk is a full response object)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.raw_finish: str | None = None
        self.block_reason = ""
        self.usage: Usage | None = None
        self.model = ""

    def add(self, data: dict[str, Any], what: str) -> list[Delta]:
        deltas: list[Delta] = []
        if as_str(data.get("modelVersion")):
            self.model = data["modelVersion"]
        usage = _usage(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        block = _block_reason(data)
        if block:
            self.block_reason = block
        candidates = data.get("candidates")
        if candidates is None:
            return deltas
        if not isinstance(candidates, list):
            raise MalformedResponse(f"{what}: candidates is not a list")
        if not candidates:
            return deltas
        candidate = candidates[0]
        if not isinstance(candidate, dict):
            raise MalformedResponse(f"{what}: a candidate is not an object")
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if parts is not None and not isinstance(parts, list):
            raise MalformedResponse(f"{what}: content.parts is not a list")
        for part in parts or ():
            if not isinstance(part, dict):
                raise MalformedResponse(f"{what}: a part is not an object")
            if part.get("thought") is True:
                continue  # thought summaries are not the answer
            if isinstance(part.get("text"), str) and part["text"]:
                self.text.append(part["text"])
                deltas.append(Delta(text=part["text"]))
            call = part.get("functionCall")
            if call is not None:
                if not isinstance(call, dict) or not as_str(call.get("name")):
                    raise MalformedResponse(f"{what}: functionCall has no name")
                args = call.get("args")
                signature = _signature(part)
                tool_call = ToolCall(
                    # Gemini ids are optional: synthesise call_<n>, n = position in the answer.
                    id=as_str(call.get("id")) or f"call_{len(self.calls)}",
                    name=call["name"],
                    arguments_json=_dump(args if isinstance(args, dict) else {}),
                    # The signature goes back on this very part next turn (only the first call
                    # of a parallel set has one).
                    provider_state=(
                        provider_state("gemini", thought_signature=signature) if signature else ""
                    ),
                )
                self.calls.append(tool_call)
                deltas.append(Delta(tool_call=tool_call))
        raw = candidate.get("finishReason")
        if isinstance(raw, str) and raw and raw != "FINISH_REASON_UNSPECIFIED":
            self.raw_finish = raw
        return deltas

    @property
    def finished(self) -> bool:
        return self.raw_finish is not None or bool(self.block_reason)

    def result(self) -> ParsedResponse:
        if self.raw_finish is None and self.block_reason:
            return ParsedResponse(
                text="",
                tool_calls=(),
                finish_reason=FINISH_CONTENT_FILTER,
                raw_finish_reason=self.block_reason,
                usage=self.usage,
                response_model=self.model,
                provider_refusal=True,
                refusal_detail=f"gemini promptFeedback.blockReason={self.block_reason}",
            )
        raw = self.raw_finish or ""
        refused = raw in _BLOCKED
        return ParsedResponse(
            text="".join(self.text),
            tool_calls=tuple(self.calls),
            finish_reason=_finish(raw, bool(self.calls)),
            raw_finish_reason=raw,
            usage=self.usage,
            response_model=self.model,
            provider_refusal=refused,
            refusal_detail=f"gemini finishReason={raw}" if refused else "",
        )


class GeminiAdapter:
    name: str = "gemini"

    # -- requests -----------------------------------------------------------------------------

    def _headers(
        self, api_key: str | None, *, json_body: bool, stream: bool = False
    ) -> dict[str, str]:
        auth = {"x-goog-api-key": api_key} if api_key is not None else {}
        return request_headers(auth, json_body=json_body, stream=stream)

    def build_request(
        self, backend: BackendConfig, request: BlindRequest, api_key: str | None, *, stream: bool
    ) -> HttpRequest:
        body: dict[str, Any] = {"contents": self._contents(request)}
        if request.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        if request.tools:
            declarations: list[dict[str, Any]] = []
            for tool in request.tools:
                schema = tool_schema(tool.parameters_json, tool.name)
                schema = {k: v for k, v in schema.items() if k != "$schema"}
                declaration: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    declaration["description"] = tool.description
                if _schema_fits(schema):
                    declaration["parameters"] = schema
                else:
                    declaration["parametersJsonSchema"] = schema
                declarations.append(declaration)
            body["tools"] = [{"functionDeclarations": declarations}]
        config: dict[str, Any] = {"maxOutputTokens": max_output_tokens(backend, request)}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        wanted = request.response_format
        if wanted is not None and wanted.structured:
            config["responseMimeType"] = "application/json"
            if wanted.type is OutputFormat.JSON_SCHEMA:
                config["responseJsonSchema"] = schema_of(wanted)
        body["generationConfig"] = config
        model = backend.model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return HttpRequest(
            method="POST",
            url=f"{base_url(backend)}/models/{model}:{method}",
            headers=self._headers(api_key, json_body=True, stream=stream),
            json=body,
        )

    def probe_request(self, backend: BackendConfig, api_key: str | None) -> HttpRequest:
        return HttpRequest(
            method="GET",
            url=f"{base_url(backend)}/models",
            headers=self._headers(api_key, json_body=False),
        )

    def _contents(self, request: BlindRequest) -> list[dict[str, Any]]:
        """``user`` / ``model`` turns; consecutive same-role messages merge into one turn, so all
        function responses answering one model turn travel together in one user turn."""
        contents: list[dict[str, Any]] = []
        for index, message in enumerate(request.messages):
            role = "model" if message.role is Role.ASSISTANT else "user"
            parts = self._parts(request.messages, index, message)
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        for content in contents:
            if not content["parts"]:
                content["parts"] = [{"text": ""}]
        return contents

    def _parts(
        self, messages: tuple[Message, ...], index: int, message: Message
    ) -> list[dict[str, Any]]:
        if message.role is Role.TOOL:
            name = tool_name_for(messages, index, message.tool_call_id)
            parsed = None
            try:
                parsed = json.loads(message.text) if message.text else None
            except ValueError:
                parsed = None
            # "output" is the documented key for a function's result; an object result is sent
            # as it is.
            response = parsed if isinstance(parsed, dict) else {"output": message.text}
            parts: list[dict[str, Any]] = [
                {"functionResponse": {"name": name, "response": response}}
            ]
            parts.extend(self._attachment_part(a) for a in message.attachments)
            return parts
        if message.role is Role.ASSISTANT:
            if message.attachments:
                raise UnsupportedInput("gemini: assistant messages cannot carry attachments")
            parts = [{"text": message.text}] if message.text else []
            for n, call in enumerate(message.tool_calls):
                part: dict[str, Any] = {
                    "functionCall": {
                        "name": call.name,
                        "args": tool_arguments(call.arguments_json, call.name),
                    }
                }
                signature = as_str(read_provider_state(call, "gemini").get("thought_signature"))
                if signature:
                    part["thoughtSignature"] = signature  # back on the part it came with
                elif n == 0:
                    part["thoughtSignature"] = SKIP_SIGNATURE
                parts.append(part)
            return parts
        # User: attachments first (Google's advice for single-media prompts), then the text.
        parts = [self._attachment_part(a) for a in message.attachments]
        if message.text:
            parts.append({"text": message.text})
        return parts

    def _attachment_part(self, attachment: Attachment) -> dict[str, Any]:
        inline = text_attachment(attachment)
        if inline is not None:
            return {"text": inline}
        media = attachment.media_type.lower()
        if attachment.modality in ("image", "audio", "video") or media == "application/pdf":
            return {"inlineData": {"mimeType": media, "data": b64(attachment.data)}}
        raise UnsupportedInput(f"gemini: unsupported attachment type {attachment.media_type}")

    # -- complete responses --------------------------------------------------------------------

    def parse_response(self, body: bytes) -> ParsedResponse:
        data = load_json_object(body, "gemini response body")
        if "error" in data and "candidates" not in data:
            raise ProviderStreamError(error_from_object(data, 0))  # an error sent with a 200
        acc = _Accumulator()
        acc.add(data, "gemini response body")
        if not acc.finished and not acc.text and not acc.calls:
            raise MalformedResponse("gemini response body has no candidates and no blockReason")
        return acc.result()

    # -- errors --------------------------------------------------------------------------------

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> Failure:
        value = try_json(body)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = value[0]  # the non-SSE streaming endpoint wraps errors in an array
        if isinstance(value, dict):
            error = error_from_object(value, status)
        else:
            error = Failure(
                outcome=outcome_for_status(status),
                message=plain_error_message(status, body),
                http_status=status,
            )
        return replace(error, retry_after_s=parse_retry_after(headers) or error.retry_after_s)

    # -- streams -------------------------------------------------------------------------------

    def new_stream(self) -> GeminiStream:
        return GeminiStream()


def error_from_object(value: dict[str, Any], status: int) -> Failure:
    """``{"error": {"code", "message", "status", "details": [...]}}``."""
    err = value.get("error")
    message = gstatus = ""
    details: list[Any] = []
    if isinstance(err, dict):
        message = as_str(err.get("message"))
        gstatus = as_str(err.get("status"))
        if not status and isinstance(err.get("code"), int):
            status = err["code"]
        if isinstance(err.get("details"), list):
            details = err["details"]
    message = message or (f"HTTP {status}" if status else "provider error")
    retry_after = 0.0
    reasons: list[str] = []
    for detail in details:
        if not isinstance(detail, dict):
            continue
        dtype = as_str(detail.get("@type"))
        if dtype.endswith("google.rpc.RetryInfo"):
            retry_after = parse_duration(as_str(detail.get("retryDelay")))
        elif dtype.endswith("google.rpc.ErrorInfo"):
            reasons.append(as_str(detail.get("reason")))
    outcome: Outcome | None
    if any(r in ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED") for r in reasons):
        outcome = Outcome.AUTH  # an invalid key comes back as 400 INVALID_ARGUMENT
    elif status in (500, 502):
        # A gateway or server failure (Google fronts 502 with status UNAVAILABLE): server_error,
        # which gets one retry, as the outcome table says for 500/502.
        outcome = Outcome.SERVER_ERROR
    else:
        outcome = _STATUS_OUTCOMES.get(gstatus)
    if outcome is None:
        outcome = classify_error(status or 500, message, (gstatus,))
    return Failure(
        outcome=outcome,
        message=truncate(message, MAX_ERROR_MESSAGE),
        http_status=status,
        retry_after_s=retry_after,
        provider_code=gstatus,
    )


class GeminiStream:
    """Accumulates ``streamGenerateContent?alt=sse`` chunks (each a GenerateContentResponse).

    Text accumulates across chunks; function calls arrive whole and are emitted at once; the
    chunk with a ``finishReason`` (or a ``promptFeedback.blockReason``) ends the answer and carries
    the final ``usageMetadata``. Gemini has no separate end marker: that chunk completes it.
    """

    def __init__(self) -> None:
        self._acc = _Accumulator()

    @property
    def finish_seen(self) -> bool:
        return self._acc.finished

    @property
    def complete(self) -> bool:
        return self._acc.finished

    def feed(self, event: SSEEvent) -> list[Delta]:
        data = event.data.strip()
        if not data:
            return []
        obj = load_json_object(data, "gemini stream event")
        if "error" in obj and "candidates" not in obj:
            raise ProviderStreamError(error_from_object(obj, 0))
        return self._acc.add(obj, "gemini stream event")

    def finish(self) -> ParsedResponse:
        if not self._acc.finished:
            raise StreamIncomplete("gemini stream ended before a chunk with a finishReason")
        return self._acc.result()
