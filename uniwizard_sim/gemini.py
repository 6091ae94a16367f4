"""Gemini (Generative Language API, v1beta) dialect.

Paths: ``POST /{target}/v1beta/models/{model}:generateContent``,
``POST /{target}/v1beta/models/{model}:streamGenerateContent?alt=sse``,
``GET /{target}/v1beta/models`` and ``GET /{target}/v1beta/models/{model}``.
Auth: ``x-goog-api-key`` header or ``?key=`` (an OAuth ``Authorization: Bearer``
is accepted too). Missing credentials get the real API's answer, which is
**403 PERMISSION_DENIED** ("Method doesn't allow unregistered callers ...").
Request fields are accepted in camelCase and snake_case, as the real API does.
SSE events are ``data: {GenerateContentResponse}`` terminated by CRLF CRLF.
Structured output: ``generationConfig.responseMimeType`` ``application/json`` alone asks
for any JSON object; with ``responseJsonSchema`` (JSON Schema) or ``responseSchema``
(the OpenAPI subset) for an instance of it. Either schema needs that MIME type, and
only one of them may be set; a MIME type other than ``text/plain`` or ``application/json``
is refused.

Thought signatures, as the real API hands them out: a thinking model (``gemini-2.5-*``,
``gemini-3-*``) puts a ``thoughtSignature`` on the first ``functionCall`` part of an answer;
a Gemini 3 model rejects the next request (400 INVALID_ARGUMENT) when the first function call
of a step in the current turn comes back without it, or with a signature it never issued for
that call ("corrupted"). The documented bypass values are accepted. Gemini 2.5 does not check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from uniwizard_sim import sse
from uniwizard_sim.common import (
    Answer,
    Conversation,
    ErrorReply,
    Ids,
    OutputFormat,
    StreamEvent,
    ToolDef,
    retry_headers,
)

NAME = "gemini"
NO_AUTH_TARGETS = frozenset({"local"})
DEFAULT_MODELS: tuple[str, ...] = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
)
PART_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "inline_data",
        "fileData",
        "file_data",
        "functionCall",
        "function_call",
        "functionResponse",
        "function_response",
        "executableCode",
        "executable_code",
        "codeExecutionResult",
        "code_execution_result",
        "thought",
        "thoughtSignature",
        "thought_signature",
        "videoMetadata",
        "video_metadata",
        "mediaResolution",
        "media_resolution",
    }
)
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Models that think, and so sign their function calls; of those, the ones that check.
THINKING_MODELS = ("gemini-2.5", "gemini-3")
STRICT_SIGNATURE_MODELS = ("gemini-3",)
# What the API documents as accepted in place of a signature it did not issue.
BYPASS_SIGNATURES = frozenset(
    {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
)
_SIGNATURE_KEY = b"uniwizard-sim thought signatures"
MIME_TYPES = ("text/plain", "application/json")

_HARM_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)


def error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> ErrorReply:
    err: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION"),
    }
    if details:
        err["details"] = details
    return ErrorReply(status, {"error": err}, headers or {})


def _bad(message: str) -> ErrorReply:
    return error(400, message)


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def auth_error(
    headers: Mapping[str, str], query: Mapping[str, str], target: str
) -> ErrorReply | None:
    if target in NO_AUTH_TARGETS:
        return None
    if headers.get("x-goog-api-key", "").strip() or query.get("key", "").strip():
        return None
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    return error(
        403,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def invalid_json() -> ErrorReply:
    return _bad("Invalid JSON payload received. Unexpected token.")


def _parts(
    parts: Any, where: str, texts: list[str], role: str
) -> tuple[int, list[str]] | ErrorReply:
    if not isinstance(parts, list) or not parts:
        return _bad(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n")
    attachments = 0
    own: list[str] = []
    for j, part in enumerate(parts):
        pw = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            return _bad(f"Invalid JSON payload received. Expected an object at '{pw}'.")
        unknown = [k for k in part if k not in PART_FIELDS]
        if unknown:
            return _bad(
                f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{pw}': "
                "Cannot find field."
            )
        if "text" in part:
            text = part["text"]
            if not isinstance(text, str):
                return _bad(f"Invalid value at '{pw}.text' (TYPE_STRING), {text!r}")
            texts.append(text)
            own.append(text)
            continue
        inline = _get(part, "inlineData", "inline_data")
        if inline is not None:
            if not isinstance(inline, dict) or not _get(inline, "mimeType", "mime_type"):
                return _bad(
                    f"* GenerateContentRequest.{pw}.inline_data.mime_type: "
                    "mime_type is not specified.\n"
                )
            if not inline.get("data"):
                return _bad(
                    "Unable to submit request because it has an empty inlineData parameter. "
                    "Add a value to the parameter and try again."
                )
            attachments += 1
            continue
        fdata = _get(part, "fileData", "file_data")
        if fdata is not None:
            if not isinstance(fdata, dict) or not _get(fdata, "fileUri", "file_uri"):
                return _bad(
                    f"* GenerateContentRequest.{pw}.file_data.file_uri: file_uri is not "
                    "specified.\n"
                )
            attachments += 1
            continue
        if not part or set(part) <= {"thought", "thoughtSignature", "thought_signature"}:
            return _bad(
                f"* GenerateContentRequest.{pw}.data: required oneof field 'data' must have "
                "one initialized field\n"
            )
    del role
    return attachments, own


def _bare_model(model: str) -> str:
    return model.removeprefix("models/")


def thought_signature(name: str, args: Any) -> str:
    """The signature the simulator issues for one function call (opaque bytes, base64): bound
    to the call, so a signature moved to another part or a changed call does not pass."""
    canonical = json.dumps([name, args], sort_keys=True, separators=(",", ":")).encode()
    digest = hmac.new(_SIGNATURE_KEY, canonical, hashlib.sha256).digest()
    return base64.b64encode(b"\x12\x0cuwsim" + digest).decode("ascii")


def _signature_bytes(value: Any) -> bytes | None:
    """A ``bytes`` field as the API reads it: base64, standard or URL-safe (the SDKs send the
    latter); None when it does not decode."""
    if not isinstance(value, str):
        return None
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return None


def _check_signatures(contents: list[Any], model: str) -> ErrorReply | None:
    """Gemini 3's check of the current turn: it starts at the last user content holding more
    than function responses; the first functionCall part of every model content after that must
    carry the signature it was given (or a documented bypass value)."""
    if not _bare_model(model).startswith(STRICT_SIGNATURE_MODELS):
        return None
    start = 0
    for i in range(len(contents) - 1, -1, -1):
        c = contents[i]
        parts = c.get("parts") or []
        if (c.get("role") or "user") == "user" and any(
            _get(p, "functionResponse", "function_response") is None for p in parts
        ):
            start = i
            break
    for i in range(start + 1, len(contents)):
        c = contents[i]
        if c.get("role") != "model":
            continue
        calls = [p for p in c.get("parts") or [] if _get(p, "functionCall", "function_call")]
        if not calls:
            continue
        first = calls[0]
        call = _get(first, "functionCall", "function_call")
        name = str(call.get("name", "")) if isinstance(call, dict) else ""
        args = call.get("args", {}) if isinstance(call, dict) else {}
        for j, part in enumerate(c.get("parts") or []):
            value = _get(part, "thoughtSignature", "thought_signature")
            if value is not None and _signature_bytes(value) is None:
                return _bad(
                    f"Invalid value at 'contents[{i}].parts[{j}].thought_signature' "
                    "(TYPE_BYTES), Base64 decoding failed"
                )
        signature = _get(first, "thoughtSignature", "thought_signature")
        if not signature:
            return _bad(
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call "
                f"`default_api:{name}` , position {i + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        issued = _signature_bytes(thought_signature(name, args))
        if signature not in BYPASS_SIGNATURES and _signature_bytes(signature) != issued:
            return _bad("Corrupted thought signature.")
    return None


def _tools(raw: Any) -> tuple[ToolDef, ...] | ErrorReply:
    if not isinstance(raw, list):
        return _bad("Invalid JSON payload received. 'tools' must be a list.")
    out: list[ToolDef] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            return _bad(f"Invalid JSON payload received. Expected an object at 'tools[{i}]'.")
        decls = _get(tool, "functionDeclarations", "function_declarations") or []
        if not isinstance(decls, list):
            return _bad(f"Invalid value at 'tools[{i}].function_declarations'")
        for j, decl in enumerate(decls):
            if not isinstance(decl, dict) or not decl.get("name"):
                return _bad(
                    f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: "
                    "Name cannot be empty.\n"
                )
            schema = (
                decl.get("parameters")
                or _get(decl, "parametersJsonSchema", "parameters_json_schema")
                or {}
            )
            out.append(ToolDef(str(decl["name"]), schema if isinstance(schema, dict) else {}))
    return tuple(out)


def _output_format(gen: dict[str, Any]) -> OutputFormat | ErrorReply | None:
    """``responseMimeType`` with ``responseJsonSchema`` / ``responseSchema`` → the JSON
    output asked for (None: plain text), or an error."""
    where = "* GenerateContentRequest.generation_config"
    mime = _get(gen, "responseMimeType", "response_mime_type")
    if mime is not None and not isinstance(mime, str):
        return _bad(
            f"Invalid value at 'generation_config.response_mime_type' (TYPE_STRING), {mime!r}"
        )
    if mime and mime not in MIME_TYPES:
        return _bad(
            f"{where}.response_mime_type: allowed mimetypes are `text/plain` and "
            "`application/json`.\n"
        )
    json_schema = _get(gen, "responseJsonSchema", "response_json_schema")
    schema = _get(gen, "responseSchema", "response_schema")
    if json_schema is not None and schema is not None:
        return _bad(
            f"{where}.response_json_schema: response_schema must be omitted when "
            "response_json_schema is set.\n"
        )
    field = "response_json_schema" if json_schema is not None else "response_schema"
    given = json_schema if json_schema is not None else schema
    if given is None:
        return OutputFormat() if mime == "application/json" else None
    if not isinstance(given, dict):
        return _bad(f"Invalid value at 'generation_config.{field}': a schema must be an object.")
    if mime != "application/json":
        return _bad(
            f"{where}.{field}: response_mime_type must be `application/json` when {field} is set.\n"
        )
    return OutputFormat(given)


def parse_request(
    body: Any, *, model: str | None = None, stream: bool = False
) -> Conversation | ErrorReply:
    """Validate a generateContent request like the Gemini API does."""
    if not isinstance(body, dict):
        return invalid_json()
    if not model:
        return error(404, "models/ is not found for API version v1beta.")
    contents = body.get("contents")
    if contents is None or (isinstance(contents, list) and not contents):
        return _bad("* GenerateContentRequest.contents: contents is not specified\n")
    if not isinstance(contents, list):
        return _bad("Invalid JSON payload received. 'contents' must be a list.")
    texts: list[str] = []
    sys_inst = _get(body, "systemInstruction", "system_instruction")
    if sys_inst is not None:
        if isinstance(sys_inst, dict):
            res = _parts(sys_inst.get("parts"), "system_instruction", texts, "system")
            if isinstance(res, ErrorReply):
                return res
        elif isinstance(sys_inst, str):
            texts.append(sys_inst)
    last_user = ""
    attachments = 0
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            return _bad(f"Invalid JSON payload received. Expected an object at '{where}'.")
        role = content.get("role", "user") or "user"
        if role not in ("user", "model"):
            return _bad("Please use a valid role: user, model.")
        res = _parts(content.get("parts"), where, texts, role)
        if isinstance(res, ErrorReply):
            return res
        if role == "user":
            attachments += res[0]
            last_user = "\n".join(res[1])
    unsigned = _check_signatures(contents, model)
    if unsigned is not None:
        return unsigned
    tools: tuple[ToolDef, ...] = ()
    if body.get("tools") is not None:
        parsed = _tools(body["tools"])
        if isinstance(parsed, ErrorReply):
            return parsed
        tools = parsed
    tool_cfg = _get(body, "toolConfig", "tool_config")
    if isinstance(tool_cfg, dict):
        fcc = _get(tool_cfg, "functionCallingConfig", "function_calling_config")
        if isinstance(fcc, dict) and str(fcc.get("mode", "")).upper() == "NONE":
            tools = ()
    max_tokens: int | None = None
    output: OutputFormat | None = None
    gen = _get(body, "generationConfig", "generation_config")
    if isinstance(gen, dict):
        fmt = _output_format(gen)
        if isinstance(fmt, ErrorReply):
            return fmt
        output = fmt
        mot = _get(gen, "maxOutputTokens", "max_output_tokens")
        if mot is not None:
            if isinstance(mot, bool) or not isinstance(mot, int) or mot < 1:
                return _bad(
                    "* GenerateContentRequest.generation_config.max_output_tokens: "
                    "max_output_tokens must be positive.\n"
                )
            max_tokens = mot
    return Conversation(
        model=model,
        prompt_texts=tuple(texts),
        last_user_text=last_user,
        attachments=attachments,
        tools=tools,
        stream=stream,
        include_usage=True,
        max_tokens=max_tokens,
        output=output,
    )


def _safety_ratings(blocked: bool) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = [
        {"category": c, "probability": "NEGLIGIBLE"} for c in _HARM_CATEGORIES
    ]
    if blocked:
        ratings[1] = {
            "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
            "probability": "HIGH",
            "blocked": True,
        }
    return ratings


def _usage(answer: Answer, final: bool = True) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": answer.prompt_tokens}
    if final:
        usage["candidatesTokenCount"] = answer.completion_tokens
        usage["totalTokenCount"] = answer.total_tokens
    else:
        usage["totalTokenCount"] = answer.prompt_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer.prompt_tokens}]
    return usage


def _finish_reason(answer: Answer) -> str:
    if answer.finish == "length":
        return "MAX_TOKENS"
    if answer.finish in ("refusal", "content_filter", "safety"):
        return answer.safety_reason
    return "STOP"


def _candidate(answer: Answer, parts: list[dict[str, Any]] | None) -> dict[str, Any]:
    cand: dict[str, Any] = {}
    if parts is not None:
        cand["content"] = {"parts": parts, "role": "model"}
    cand["finishReason"] = _finish_reason(answer)
    cand["index"] = 0
    if answer.finish in ("refusal", "content_filter", "safety"):
        cand["safetyRatings"] = _safety_ratings(True)
    return cand


def _envelope(conv: Conversation, ids: Ids, **fields: Any) -> dict[str, Any]:
    out = dict(fields)
    out["modelVersion"] = conv.model
    out["responseId"] = ids.suffix
    return out


def _blocked(conv: Conversation, answer: Answer, ids: Ids) -> dict[str, Any]:
    return _envelope(
        conv,
        ids,
        promptFeedback={"blockReason": "SAFETY", "safetyRatings": _safety_ratings(True)},
        usageMetadata={
            "promptTokenCount": answer.prompt_tokens,
            "totalTokenCount": answer.prompt_tokens,
        },
    )


def _answer_parts(answer: Answer, model: str) -> list[dict[str, Any]] | None:
    if answer.tool_call is not None:
        call = answer.tool_call
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        if _bare_model(model).startswith(THINKING_MODELS):
            part["thoughtSignature"] = thought_signature(call.name, call.arguments)
        return [part]
    if answer.finish in ("refusal", "content_filter", "safety"):
        return None
    return [{"text": answer.text}] if answer.text else []


def build_response(conv: Conversation, answer: Answer, ids: Ids) -> dict[str, Any]:
    if answer.finish == "blocked":
        return _blocked(conv, answer, ids)
    return _envelope(
        conv,
        ids,
        candidates=[_candidate(answer, _answer_parts(answer, conv.model))],
        usageMetadata=_usage(answer),
    )


def stream_events(conv: Conversation, answer: Answer, ids: Ids) -> list[StreamEvent]:
    if answer.finish == "blocked":
        return [StreamEvent(sse.data(_blocked(conv, answer, ids), crlf=True), "end")]
    events: list[StreamEvent] = []
    if answer.tool_call is not None:
        events.append(
            StreamEvent(
                sse.data(
                    _envelope(
                        conv,
                        ids,
                        candidates=[
                            {
                                "content": {
                                    "parts": _answer_parts(answer, conv.model),
                                    "role": "model",
                                },
                                "index": 0,
                            }
                        ],
                        usageMetadata=_usage(answer, final=False),
                    ),
                    crlf=True,
                ),
                "content",
            )
        )
        last_parts: list[dict[str, Any]] | None = [{"text": ""}]
    elif answer.text:
        for piece in answer.chunks:
            chunk = _envelope(
                conv,
                ids,
                candidates=[{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}],
                usageMetadata=_usage(answer, final=False),
            )
            events.append(StreamEvent(sse.data(chunk, crlf=True), "content"))
        last_parts = [{"text": ""}]
    else:
        last_parts = _answer_parts(answer, conv.model)
    final = _envelope(
        conv, ids, candidates=[_candidate(answer, last_parts)], usageMetadata=_usage(answer)
    )
    events.append(StreamEvent(sse.data(final, crlf=True), "end"))
    return events


_STATUS_MESSAGES: dict[int, str] = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
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
            message
            or "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            headers,
        )
    details: list[dict[str, Any]] | None = None
    if status == 429 and (retry_after is not None or retry_after_ms is not None):
        secs = retry_after if retry_after is not None else (retry_after_ms or 0) / 1000
        details = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{secs:g}s"}
        ]
    return error(status, message or _STATUS_MESSAGES.get(status, "Error"), headers, details)


def content_filter_error(message: str | None) -> ErrorReply | None:
    """Gemini reports prompt blocks in-band (200 + ``promptFeedback.blockReason``)."""
    del message
    return None


def stream_error_event(err: ErrorReply) -> bytes:
    return sse.data(err.body, crlf=True)


MALFORMED_BODY = b'{"candidates":[{"content":{"parts":[{"text":"Simulated answer'
MALFORMED_FRAME = b'data: {"candidates":[{"content":{"parts":[{\r\n\r\n'


def not_found(path: str) -> ErrorReply:
    return error(404, f"Requested entity was not found: {path}")


def model_info(model: str) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": " ".join(p.capitalize() for p in model.split("-")),
        "description": "Simulated model served by the uniwizard provider simulator.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": [
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
    }


def list_models(models: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"models": [model_info(m) for m in models]}
