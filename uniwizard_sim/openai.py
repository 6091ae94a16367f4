"""OpenAI Chat Completions dialect (also OpenAI-compatible: llama.cpp, Moonshot, xAI).

Paths: ``POST /{target}/v1/chat/completions``, ``GET /{target}/v1/models``.
Auth: ``Authorization: Bearer <non-empty>``, except for the target ``local``
(llama.cpp accepts unauthenticated requests).
Structured output: ``response_format`` ``{"type": "text" | "json_object" | "json_schema"}``,
the last with ``json_schema: {name, schema?, strict?, description?}``; with ``strict: true``
the schema must pass OpenAI's strict-mode rules (root object; every object has
``additionalProperties: false`` and lists all its properties in ``required``).
"""

from __future__ import annotations

import json
import re
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
    json_type,
    retry_headers,
)

NAME = "openai"
NO_AUTH_TARGETS = frozenset({"local"})
DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-5",
    "hermes-4-14b",
    "kimi-k2-0905-preview",
    "moonshot-v1-128k",
    "grok-4",
    "grok-3-mini",
)
ROLES = ("system", "assistant", "user", "function", "tool", "developer")
PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")
_IMAGE_DATA_RE = re.compile(r"data:image/(png|jpeg|jpg|gif|webp);base64,", re.IGNORECASE)
_TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
RESPONSE_FORMAT_TYPES = ("json_object", "json_schema", "text")
_FINISH: dict[Finish, str] = {
    "stop": "stop",
    "length": "length",
    "tool": "tool_calls",
    "refusal": "stop",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "blocked": "content_filter",
}


def error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> ErrorReply:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return ErrorReply(status, body, headers or {})


def _bad(message: str, param: str | None = None, code: str | None = None) -> ErrorReply:
    return error(400, message, param=param, code=code)


def _missing(param: str) -> ErrorReply:
    return _bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _invalid_type(param: str, expected: str, value: Any) -> ErrorReply:
    return _bad(
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.",
        param,
        "invalid_type",
    )


def _invalid_value(param: str, value: Any, supported: tuple[str, ...]) -> ErrorReply:
    quoted = [f"'{s}'" for s in supported]
    listing = (
        ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
        if len(quoted) > 2
        else (" and ".join(quoted))
    )
    return _bad(
        f"Invalid value: '{value}'. Supported values are: {listing}.", param, "invalid_value"
    )


# -- auth ---------------------------------------------------------------------------------


def auth_error(
    headers: Mapping[str, str], query: Mapping[str, str], target: str
) -> ErrorReply | None:
    if target in NO_AUTH_TARGETS:
        return None
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    if not auth:
        return error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
            "or as the password field (with blank username) if you're accessing the API "
            "from your browser and are prompted for a username and password. You can obtain "
            "an API key from https://platform.openai.com/account/api-keys.",
        )
    return error(
        401,
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


# -- request validation -------------------------------------------------------------------


def invalid_json() -> ErrorReply:
    return _bad(
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
        "this, please contact us through our help center at help.openai.com.)"
    )


def _part(
    part: Any, where: str, role: str, texts: list[str]
) -> tuple[int, str | None] | ErrorReply:
    """Validate one content part → (attachments, text) or an error."""
    if not isinstance(part, dict):
        return _invalid_type(where, "an object", part)
    ptype = part.get("type")
    if ptype is None:
        return _missing(f"{where}.type")
    if ptype not in PART_TYPES:
        return _invalid_value(f"{where}.type", ptype, PART_TYPES)
    if ptype == "text":
        text = part.get("text")
        if text is None:
            return _missing(f"{where}.text")
        if not isinstance(text, str):
            return _invalid_type(f"{where}.text", "a string", text)
        texts.append(text)
        return 0, text
    if ptype == "refusal":
        if role != "assistant":
            return _bad(
                f"Invalid '{where}.type': refusal parts are only allowed for "
                "messages with role 'assistant'.",
                f"{where}.type",
                "invalid_value",
            )
        return 0, None
    if role != "user":
        return _bad(
            f"Invalid '{where}.type': '{ptype}' parts are only allowed for messages with role "
            f"'user', but this message has role '{role}'.",
            f"{where}.type",
            "invalid_value",
        )
    if ptype == "image_url":
        img = part.get("image_url")
        if not isinstance(img, dict):
            return (
                _missing(f"{where}.image_url")
                if img is None
                else _invalid_type(f"{where}.image_url", "an object", img)
            )
        url = img.get("url")
        if not isinstance(url, str) or not url:
            return _missing(f"{where}.image_url.url")
        if url.startswith("data:") and not _IMAGE_DATA_RE.match(url):
            return _bad(
                f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an "
                "image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
                "an unsupported value.",
                f"{where}.image_url.url",
                "invalid_value",
            )
        return 1, None
    if ptype in ("input_audio", "audio"):
        audio = part.get(ptype)
        if not isinstance(audio, dict):
            return _missing(f"{where}.{ptype}")
        if ptype == "input_audio":
            if not isinstance(audio.get("data"), str) or not audio.get("data"):
                return _missing(f"{where}.input_audio.data")
            fmt = audio.get("format")
            if fmt not in ("wav", "mp3"):
                return _invalid_value(f"{where}.input_audio.format", fmt, ("wav", "mp3"))
        return 1, None
    # file
    file = part.get("file")
    if not isinstance(file, dict) or not (file.get("file_data") or file.get("file_id")):
        return _missing(f"{where}.file")
    return 1, None


def _tools(raw: Any) -> tuple[ToolDef, ...] | ErrorReply:
    if not isinstance(raw, list):
        return _invalid_type("tools", "an array", raw)
    out: list[ToolDef] = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            return _invalid_type(where, "an object", tool)
        ttype = tool.get("type", "function")
        if ttype != "function":
            return _invalid_value(f"{where}.type", ttype, ("function",))
        fn = tool.get("function")
        if not isinstance(fn, dict):
            return _missing(f"{where}.function")
        name = fn.get("name")
        if name is None or name == "":
            return _missing(f"{where}.function.name")
        if not isinstance(name, str) or not _TOOL_NAME_RE.fullmatch(name):
            return _bad(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"{where}.function.name",
                "invalid_value",
            )
        params = fn.get("parameters", {})
        if not isinstance(params, dict):
            return _invalid_type(f"{where}.function.parameters", "an object", params)
        out.append(ToolDef(name, params))
    return tuple(out)


def _strict_problem(node: Any, context: tuple[str, ...] = ()) -> str | None:
    """What strict mode rejects in one (sub)schema, as the API words it; None when fine."""
    if not isinstance(node, dict):
        return None
    types = node.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types):
        if node.get("additionalProperties") is not False:
            return (
                f"In context={context!r}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        required = node.get("required") or []
        missing = [p for p in node.get("properties") or {} if p not in required]
        if missing:
            return (
                f"In context={context!r}, 'required' is required to be supplied and to be an "
                f"array including every key in properties. Missing '{missing[0]}'."
            )
    subs: list[tuple[tuple[str, ...], Any]] = [((k,), node.get(k)) for k in ("items", "not")]
    for key in ("properties", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            subs += [((key, name), sub) for name, sub in node[key].items()]
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(node.get(key), list):
            subs += [((key, str(i)), sub) for i, sub in enumerate(node[key])]
    for where, sub in subs:
        problem = _strict_problem(sub, context + where)
        if problem:
            return problem
    return None


def _response_format(raw: Any) -> OutputFormat | ErrorReply | None:
    """``response_format`` → the structured output asked for (None: plain text), or an error."""
    if not isinstance(raw, dict):
        return _invalid_type("response_format", "an object", raw)
    rtype = raw.get("type")
    if rtype is None:
        return _missing("response_format.type")
    if rtype not in RESPONSE_FORMAT_TYPES:
        return _invalid_value("response_format.type", rtype, RESPONSE_FORMAT_TYPES)
    if rtype == "text":
        return None
    if rtype == "json_object":
        return OutputFormat()
    where = "response_format.json_schema"
    spec = raw.get("json_schema")
    if spec is None:
        return _missing(where)
    if not isinstance(spec, dict):
        return _invalid_type(where, "an object", spec)
    name = spec.get("name")
    if name is None or name == "":
        return _missing(f"{where}.name")
    if not isinstance(name, str):
        return _invalid_type(f"{where}.name", "a string", name)
    if len(name) > 64:
        return _bad(
            f"Invalid '{where}.name': string too long. Expected a string with maximum length "
            f"64, but got a string with length {len(name)} instead.",
            f"{where}.name",
            "string_above_max_length",
        )
    if not _TOOL_NAME_RE.fullmatch(name):
        return _bad(
            f"Invalid '{where}.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            f"{where}.name",
            "invalid_value",
        )
    for key, expected, kind in (("description", "a string", str), ("strict", "a boolean", bool)):
        value = spec.get(key)
        if value is not None and not isinstance(value, kind):
            return _invalid_type(f"{where}.{key}", expected, value)
    schema = spec.get("schema")
    if schema is None:
        return OutputFormat()
    if not isinstance(schema, dict):
        return _invalid_type(f"{where}.schema", "an object", schema)
    if spec.get("strict"):
        problem = (
            _strict_problem(schema)
            if schema.get("type") == "object"
            else f"schema must be a JSON Schema of 'type: \"object\"', got 'type: "
            f'"{schema.get("type")}"\'.'
        )
        if problem:
            return _bad(
                f"Invalid schema for response_format '{name}': {problem}", "response_format"
            )
    return OutputFormat(schema)


def _positive_int(body: dict[str, Any], name: str) -> int | ErrorReply | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return _invalid_type(name, "an integer", value)
    if value < 1:
        return _bad(
            f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got "
            f"{value} instead.",
            name,
            "integer_below_min_value",
        )
    return value


def parse_request(
    body: Any, *, model: str | None = None, stream: bool = False
) -> Conversation | ErrorReply:
    """Validate a chat completion request like the OpenAI API does."""
    del model, stream  # decided by the body for this dialect
    if not isinstance(body, dict):
        return invalid_json()
    mdl = body.get("model")
    if mdl is None or mdl == "":
        return _bad("you must provide a model parameter")
    if not isinstance(mdl, str):
        return _invalid_type("model", "a string", mdl)
    if "messages" not in body:
        return _missing("messages")
    msgs = body["messages"]
    if not isinstance(msgs, list):
        return _invalid_type("messages", "an array", msgs)
    if not msgs:
        return _bad(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            "messages",
            "empty_array",
        )
    texts: list[str] = []
    last_user = ""
    attachments = 0
    for i, msg in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            return _invalid_type(where, "an object", msg)
        role = msg.get("role")
        if role is None:
            return _missing(f"{where}.role")
        if role not in ROLES:
            return _invalid_value(f"{where}.role", role, ROLES)
        content = msg.get("content")
        if content is None:
            if role != "assistant" or not (msg.get("tool_calls") or msg.get("function_call")):
                return _missing(f"{where}.content")
        elif isinstance(content, str):
            texts.append(content)
            if role == "user":
                last_user = content
        elif isinstance(content, list):
            user_texts: list[str] = []
            for j, part in enumerate(content):
                res = _part(part, f"{where}.content[{j}]", role, texts)
                if isinstance(res, ErrorReply):
                    return res
                attachments += res[0]
                if res[1] is not None:
                    user_texts.append(res[1])
            if role == "user":
                last_user = "\n".join(user_texts)
        else:
            return _invalid_type(f"{where}.content", "one of a string or array", content)
        if role == "tool" and not msg.get("tool_call_id"):
            return _missing(f"{where}.tool_call_id")
    tools: tuple[ToolDef, ...] = ()
    if body.get("tools") is not None:
        parsed = _tools(body["tools"])
        if isinstance(parsed, ErrorReply):
            return parsed
        tools = parsed
    if body.get("tool_choice") == "none":
        tools = ()
    output: OutputFormat | None = None
    if body.get("response_format") is not None:
        fmt = _response_format(body["response_format"])
        if isinstance(fmt, ErrorReply):
            return fmt
        output = fmt
    stream_flag = body.get("stream")
    if stream_flag is not None and not isinstance(stream_flag, bool):
        return _invalid_type("stream", "a boolean", stream_flag)
    opts = body.get("stream_options")
    include_usage = False
    if opts is not None:
        if not stream_flag:
            return _bad(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                "invalid_value",
            )
        if not isinstance(opts, dict):
            return _invalid_type("stream_options", "an object", opts)
        include_usage = bool(opts.get("include_usage"))
    limits: list[int] = []
    for name in ("max_tokens", "max_completion_tokens"):
        lim = _positive_int(body, name)
        if isinstance(lim, ErrorReply):
            return lim
        if lim is not None:
            limits.append(lim)
    temp = body.get("temperature")
    if temp is not None:
        if isinstance(temp, bool) or not isinstance(temp, int | float):
            return _invalid_type("temperature", "a decimal", temp)
        if not 0 <= temp <= 2:
            return _bad(
                f"Invalid 'temperature': decimal {'above maximum' if temp > 2 else 'below minimum'}"
                f" value. Expected a value {'<= 2' if temp > 2 else '>= 0'}, but got {temp} "
                "instead.",
                "temperature",
                "decimal_above_max_value" if temp > 2 else "decimal_below_min_value",
            )
    return Conversation(
        model=mdl,
        prompt_texts=tuple(texts),
        last_user_text=last_user,
        attachments=attachments,
        tools=tools,
        stream=bool(stream_flag),
        include_usage=include_usage,
        max_tokens=min(limits) if limits else None,
        output=output,
    )


# -- responses ----------------------------------------------------------------------------


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _message(answer: Answer) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text,
        "refusal": answer.refusal if answer.finish == "refusal" else None,
        "annotations": [],
    }
    if answer.tool_call is not None:
        call = answer.tool_call
        msg["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
        ]
    return msg


def build_response(conv: Conversation, answer: Answer, ids: Ids) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{ids.suffix}",
        "object": "chat.completion",
        "created": ids.created,
        "model": conv.model,
        "choices": [
            {
                "index": 0,
                "message": _message(answer),
                "logprobs": None,
                "finish_reason": _FINISH[answer.finish],
            }
        ],
        "usage": _usage(answer),
        "service_tier": "default",
        "system_fingerprint": "fp_uniwizard_sim",
    }


def stream_events(conv: Conversation, answer: Answer, ids: Ids) -> list[StreamEvent]:
    base_id = f"chatcmpl-{ids.suffix}"
    usage_null = conv.include_usage

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": base_id,
            "object": "chat.completion.chunk",
            "created": ids.created,
            "model": conv.model,
            "system_fingerprint": "fp_uniwizard_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage_null:
            obj["usage"] = None
        return sse.data(obj)

    events: list[StreamEvent] = []
    call = answer.tool_call
    if call is not None:
        events.append(
            StreamEvent(
                chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ],
                    }
                ),
                "meta",
            )
        )
        args = json.dumps(call.arguments)
        step = max(1, len(args) // 3 + 1)
        for k in range(0, len(args), step):
            piece = args[k : k + step]
            events.append(
                StreamEvent(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    "content",
                )
            )
    elif answer.finish == "refusal":
        events.append(
            StreamEvent(chunk({"role": "assistant", "content": None, "refusal": ""}), "meta")
        )
        for piece in answer.chunks:
            events.append(StreamEvent(chunk({"refusal": piece}), "content"))
    else:
        events.append(
            StreamEvent(chunk({"role": "assistant", "content": "", "refusal": None}), "meta")
        )
        if answer.text:
            for piece in answer.chunks:
                events.append(StreamEvent(chunk({"content": piece}), "content"))
    events.append(StreamEvent(chunk({}, _FINISH[answer.finish]), "end"))
    if conv.include_usage:
        usage = {
            "id": base_id,
            "object": "chat.completion.chunk",
            "created": ids.created,
            "model": conv.model,
            "system_fingerprint": "fp_uniwizard_sim",
            "choices": [],
            "usage": _usage(answer),
        }
        events.append(StreamEvent(sse.data(usage), "end"))
    events.append(StreamEvent(sse.DONE, "done"))
    return events


# -- faults -------------------------------------------------------------------------------

_STATUS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM): Limit 500, Used 500, Requested 1. "
        "Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to "
        "learn more.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
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
            or "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 200000 tokens. Please reduce the length of the messages.",
            param="messages",
            code=code,
            headers=headers,
        )
    if status == 429 and code == "insufficient_quota":
        return error(
            429,
            message
            or "You exceeded your current quota, please check your plan and billing details.",
            type_="insufficient_quota",
            code=code,
            headers=headers,
        )
    if status == 429:
        headers.setdefault("x-ratelimit-limit-requests", "500")
        headers.setdefault("x-ratelimit-remaining-requests", "0")
        headers.setdefault("x-ratelimit-reset-requests", f"{retry_after or 1:g}s")
    default_type = "invalid_request_error" if status < 500 else "server_error"
    type_, default_code, default_message = _STATUS.get(status, (default_type, None, "Error."))
    return error(
        status,
        message or default_message,
        type_=type_,
        code=code or default_code,
        headers=headers,
    )


def content_filter_error(message: str | None) -> ErrorReply | None:
    return error(
        400,
        message
        or "Your request was rejected as a result of our safety system. Your prompt may "
        "contain text that is not allowed by our safety system.",
        code="content_policy_violation",
    )


def stream_error_event(err: ErrorReply) -> bytes:
    return sse.data(err.body)


MALFORMED_BODY = (
    b'{"id":"chatcmpl-sim","object":"chat.completion","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"Simulated answer'
)
MALFORMED_FRAME = b'data: {"id":"chatcmpl-sim","object":"chat.completion.chunk","choices":[{\n\n'


def not_found(path: str) -> ErrorReply:
    return error(404, f"Invalid URL (POST {path})")


def list_models(models: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for m in models
        ],
    }


def model_info(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
