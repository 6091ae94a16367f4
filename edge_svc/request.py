"""An OpenAI chat-completion request (its JSON) -> our :class:`~uniwizard.types.Task`. Pure.

Only what the request carries goes on, as a blind request: the system prompt and the messages,
the tools, the output limit and the temperature. Anything that could say who is asking is
dropped, never sent on. Anything our contract cannot carry is refused with a 400 naming the
field, rather than silently ignored.

Carried:

* ``model``: which chain (``auto``, a category, a backend; see ``edge_svc.models``);
* ``messages``: ``system`` and ``developer`` become the system prompt (joined, in order; only
  before the conversation starts); ``user`` text and text parts (joined by newlines),
  ``image_url`` (a data URL; an http(s) URL only where the edge is told to fetch its host) and
  ``input_audio`` (wav, mp3); ``assistant`` text and ``tool_calls`` (function calls, with our
  ``provider_state`` passed back as it came); ``tool`` results by ``tool_call_id``;
* ``tools`` (function tools: name, description, parameters as a JSON Schema object);
* ``max_completion_tokens`` or ``max_tokens`` (both given: they must agree), ``temperature``
  (0 to 2), ``stream`` and ``stream_options.include_usage``;
* ``response_format``: ``text``, ``json_object``, or ``json_schema`` (``name``, ``schema``,
  ``strict``; a ``description`` is refused): routed only to backends that can return it (the
  router skips the others as ``no_output_format``; a pinned backend that cannot is a 400).

Dropped, never sent on (they say who is asking): ``user``, ``safety_identifier``,
``messages[].name``. Accepted with no effect: ``metadata``, ``store``, ``service_tier``,
``prompt_cache_key``, an image's ``detail``, ``tools[].function.strict``, and the defaults
``n`` = 1, ``top_p`` = 1, ``presence_penalty`` = 0, ``frequency_penalty`` = 0, ``logprobs`` =
false, ``parallel_tool_calls`` = true, ``tool_choice`` = ``auto``.

Refused with a 400 naming the field: any other value of those, ``stop``, ``seed``,
``logit_bias``, ``top_logprobs``, ``audio``,
``modalities``, ``reasoning_effort``, ``verbosity``, ``prediction``, ``web_search_options``,
``functions``, ``function_call``, and anything unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from edge_svc.errors import bad_request
from edge_svc.messages import ImageUrl, MessageReader
from uniwizard.limits import SCHEMA_NAME_RE
from uniwizard.types import (
    TOOL_NAME_RE,
    Attachment,
    BlindRequest,
    OutputFormat,
    ResponseFormat,
    Task,
    ToolDef,
)

# Fields read (the first group) or accepted without effect (the rest).
_CARRIED = {
    "model",
    "messages",
    "tools",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "stream",
    "stream_options",
    "response_format",
}
_NO_EFFECT = {"user", "safety_identifier", "metadata", "store", "service_tier", "prompt_cache_key"}
# Accepted only at the value that changes nothing.
_DEFAULTS: dict[str, Any] = {
    "n": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "parallel_tool_calls": True,
    "tool_choice": "auto",
}
_WHY_NOT: dict[str, str] = {
    "stop": "stop sequences are not carried to the backends",
    "seed": "a seed is not carried to the backends",
    "tool_choice": "only tool_choice 'auto' is carried: the model decides whether to call a tool",
    "parallel_tool_calls": "parallel tool calls cannot be turned off",
    "n": "one choice per request (n = 1)",
    "functions": "the legacy functions field is not supported; use tools",
    "function_call": "the legacy function_call field is not supported; use tools",
}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat-completion request as the router takes it."""

    model: str
    task: Task
    stream: bool = False
    include_usage: bool = False
    image_urls: tuple[ImageUrl, ...] = ()


def parse_chat(body: Any, *, request_id: str = "", fetch_urls: bool = False) -> ChatRequest:
    """The request, or ``ApiError`` (400) naming the first field that cannot be taken.
    ``fetch_urls``: whether http(s) image URLs are allowed (they are left to fetch)."""
    if not isinstance(body, dict):
        raise bad_request(f"the body must be a JSON object, not {_kind(body)}")
    _check_fields(body)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request(
            "model is required: auto, a category or a backend (GET /v1/models)", "model"
        )
    stream = _bool(body, "stream", False)
    include_usage = _stream_options(body.get("stream_options"), stream)
    builder = MessageReader(fetch_urls)
    system, messages = builder.read(body.get("messages"))
    request = BlindRequest(
        messages=tuple(messages),
        system_prompt=system,
        tools=_tools(body.get("tools")),
        max_output_tokens=_max_tokens(body),
        temperature=_temperature(body.get("temperature")),
        response_format=_response_format(body.get("response_format")),
    )
    return ChatRequest(
        model=model.strip(),
        task=Task(request=request, request_id=request_id),
        stream=stream,
        include_usage=include_usage,
        image_urls=tuple(builder.urls),
    )


def with_images(req: ChatRequest, images: Sequence[Attachment]) -> ChatRequest:
    """The request with ``images[k]`` (fetched) in place of ``req.image_urls[k]``."""
    if len(images) != len(req.image_urls):
        raise ValueError("one image per URL")
    messages = list(req.task.request.messages)
    for ref, image in zip(req.image_urls, images, strict=True):
        m = messages[ref.message]
        atts = list(m.attachments)
        stem = atts[ref.attachment].name.rsplit(".", 1)[0]
        subtype = image.media_type.split("/", 1)[1].split(";", 1)[0]
        atts[ref.attachment] = replace(image, name=f"{stem}.{subtype}")
        messages[ref.message] = replace(m, attachments=tuple(atts))
    request = replace(req.task.request, messages=tuple(messages))
    return replace(req, task=replace(req.task, request=request), image_urls=())


# -- top-level fields ---------------------------------------------------------------------------


def _check_fields(body: Mapping[str, Any]) -> None:
    for key, value in body.items():
        if value is None or key in _CARRIED or key in _NO_EFFECT:
            continue
        if key in _DEFAULTS:
            if _same(value, _DEFAULTS[key]):
                continue
            why = _WHY_NOT.get(key, f"only {json.dumps(_DEFAULTS[key])} is accepted")
            raise bad_request(f"{key}={json.dumps(value)[:60]}: {why}", key)
        why = _WHY_NOT.get(key, "not supported by this edge")
        raise bad_request(f"{key}: {why}", key)


def _same(value: Any, default: Any) -> bool:
    """``value`` is the default itself (``True`` is not 1, nor 1.0 true)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return value is default
    return bool(value == default)


def _bool(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be true or false", key)
    return value


def _stream_options(value: Any, stream: bool) -> bool:
    if value is None:
        return False
    if not stream:
        raise bad_request("stream_options is only allowed with stream: true", "stream_options")
    if not isinstance(value, dict):
        raise bad_request("stream_options must be an object", "stream_options")
    for key in value:
        if key not in ("include_usage", "include_obfuscation"):
            raise bad_request(f"stream_options.{key} is not supported", f"stream_options.{key}")
    usage = value.get("include_usage", False)
    if not isinstance(usage, bool):
        raise bad_request(
            "stream_options.include_usage must be true or false", "stream_options.include_usage"
        )
    return usage


def _max_tokens(body: Mapping[str, Any]) -> int:
    values = {}
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad_request(f"{key} must be a positive integer", key)
        values[key] = value
    if len(set(values.values())) > 1:
        raise bad_request(
            "max_tokens and max_completion_tokens disagree; send one", "max_completion_tokens"
        )
    return next(iter(values.values()), 0)


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise bad_request("temperature must be a number from 0 to 2", "temperature")
    return float(value)


def _response_format(value: Any) -> ResponseFormat | None:
    """OpenAI's ``response_format``: None for text."""
    if value is None:
        return None
    where = "response_format"
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object", where)
    kind = value.get("type")
    allowed = {"text": {"type"}, "json_object": {"type"}, "json_schema": {"type", "json_schema"}}
    if kind not in allowed:
        raise bad_request(f"{where}.type must be text, json_object or json_schema", f"{where}.type")
    for key in value:
        if key not in allowed[kind]:
            raise bad_request(f"{where}.{key} is not allowed with type {kind}", f"{where}.{key}")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(OutputFormat.JSON_OBJECT)
    spec = value.get("json_schema")
    where = f"{where}.json_schema"
    if not isinstance(spec, dict):
        raise bad_request(f"{where} must be an object with name and schema", where)
    for key in spec:
        if key not in ("name", "schema", "strict"):
            raise bad_request(f"{where}.{key} is not supported", f"{where}.{key}")
    name = spec.get("name")
    if not isinstance(name, str) or not SCHEMA_NAME_RE.match(name):
        raise bad_request(
            f"{where}.name is required: letters, digits, '_' or '-', at most 64", f"{where}.name"
        )
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise bad_request(f"{where}.schema must be a JSON Schema object", f"{where}.schema")
    strict = spec.get("strict") or False
    if not isinstance(strict, bool):
        raise bad_request(f"{where}.strict must be true or false", f"{where}.strict")
    return ResponseFormat(
        OutputFormat.JSON_SCHEMA, name, json.dumps(schema, ensure_ascii=False), strict
    )


def _tools(value: Any) -> tuple[ToolDef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad_request("tools must be a list", "tools")
    tools: list[ToolDef] = []
    for i, item in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(item, dict) or item.get("type") != "function":
            raise bad_request(f"{where}: only function tools are supported", f"{where}.type")
        fn = item.get("function")
        if not isinstance(fn, dict):
            raise bad_request(f"{where}.function must be an object", f"{where}.function")
        tools.append(_tool(fn, f"{where}.function"))
    names = [t.name for t in tools]
    for k, name in enumerate(names):
        if name in names[:k]:
            raise bad_request(f"tool name {name!r} is used more than once", f"tools[{k}]")
    return tuple(tools)


def _tool(fn: Mapping[str, Any], where: str) -> ToolDef:
    for key in fn:
        if key not in ("name", "description", "parameters", "strict"):
            raise bad_request(f"{where}.{key} is not supported", f"{where}.{key}")
    name = fn.get("name")
    if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
        raise bad_request(
            f"{where}.name: a name is a letter or '_' then letters, digits, '_' or '-', "
            "at most 64 characters",
            f"{where}.name",
        )
    description = fn.get("description") or ""
    if not isinstance(description, str):
        raise bad_request(f"{where}.description must be a string", f"{where}.description")
    parameters = fn.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict) or str(parameters.get("type", "object")) != "object":
        raise bad_request(
            f"{where}.parameters must be a JSON Schema object (type: object)",
            f"{where}.parameters",
        )
    return ToolDef(name, description, json.dumps(parameters, ensure_ascii=False))


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else "a number")


__all__ = ["ChatRequest", "ImageUrl", "parse_chat", "with_images"]
