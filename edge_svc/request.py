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
  (0 to 2), ``stream`` and ``stream_options.include_usage``.

Dropped, never sent on (they say who is asking): ``user``, ``safety_identifier``,
``messages[].name``. Accepted with no effect: ``metadata``, ``store``, ``service_tier``,
``prompt_cache_key``, an image's ``detail``, ``tools[].function.strict``, and the defaults
``n`` = 1, ``top_p`` = 1, ``presence_penalty`` = 0, ``frequency_penalty`` = 0, ``logprobs`` =
false, ``parallel_tool_calls`` = true, ``tool_choice`` = ``auto``, ``response_format`` = text.

Refused with a 400 naming the field: any other value of those, ``stop``, ``seed``,
``logit_bias``, ``top_logprobs``, ``response_format`` json_object / json_schema, ``audio``,
``modalities``, ``reasoning_effort``, ``verbosity``, ``prediction``, ``web_search_options``,
``functions``, ``function_call``, and anything unknown.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from edge_svc.errors import bad_request
from uniwizard.limits import MEDIA_TYPE_RE
from uniwizard.types import (
    TOOL_NAME_RE,
    Attachment,
    BlindRequest,
    Message,
    Role,
    Task,
    ToolCall,
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
    "response_format": "structured output (json_object, json_schema) is not carried to the "
    "backends; ask for JSON in the prompt",
    "tool_choice": "only tool_choice 'auto' is carried: the model decides whether to call a tool",
    "parallel_tool_calls": "parallel tool calls cannot be turned off",
    "n": "one choice per request (n = 1)",
    "functions": "the legacy functions field is not supported; use tools",
    "function_call": "the legacy function_call field is not supported; use tools",
}
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}


@dataclass(frozen=True, slots=True)
class ImageUrl:
    """An http(s) image the edge must fetch before sending: it stands in the task as an
    attachment with no data (message ``message``, attachment ``attachment``)."""

    url: str
    param: str  # where the request had it: messages[1].content[0].image_url.url
    message: int
    attachment: int


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
    builder = _Messages(fetch_urls)
    system, messages = builder.read(body.get("messages"))
    request = BlindRequest(
        messages=tuple(messages),
        system_prompt=system,
        tools=_tools(body.get("tools")),
        max_output_tokens=_max_tokens(body),
        temperature=_temperature(body.get("temperature")),
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
        if key == "response_format":
            if isinstance(value, dict) and value.get("type") == "text" and len(value) == 1:
                continue
            raise bad_request(_WHY_NOT[key], key)
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


# -- messages -----------------------------------------------------------------------------------


class _Messages:
    """Reads ``messages`` into the system prompt and our messages, numbering attachments."""

    def __init__(self, fetch_urls: bool) -> None:
        self.fetch_urls = fetch_urls
        self.urls: list[ImageUrl] = []
        self.attachments = 0

    def read(self, value: Any) -> tuple[str, list[Message]]:
        if not isinstance(value, list) or not value:
            raise bad_request("messages must be a non-empty list", "messages")
        system: list[str] = []
        out: list[Message] = []
        for i, m in enumerate(value):
            where = f"messages[{i}]"
            if not isinstance(m, dict):
                raise bad_request(f"{where} must be an object", where)
            role = m.get("role")
            if role in ("system", "developer"):
                if out:
                    raise bad_request(
                        f"{where}: a {role} message after the conversation started cannot be "
                        "carried; put system text before the first user message",
                        f"{where}.role",
                    )
                self._keys(m, where, ("content", "name"))
                system.append(self._text(m.get("content"), f"{where}.content", required=True))
            elif role == "user":
                self._keys(m, where, ("content", "name"))
                out.append(self._user(m.get("content"), where, len(out)))
            elif role == "assistant":
                self._keys(m, where, ("content", "name", "tool_calls", "refusal"))
                out.append(self._assistant(m, where))
            elif role == "tool":
                self._keys(m, where, ("content", "tool_call_id"))
                out.append(self._tool_result(m, where))
            else:
                raise bad_request(
                    f"{where}.role {role!r} is not one of system, developer, user, assistant, tool",
                    f"{where}.role",
                )
        if not out:
            raise bad_request("messages has no user message", "messages")
        return "\n\n".join(s for s in system if s), out

    @staticmethod
    def _keys(m: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for key, value in m.items():
            if key != "role" and key not in allowed and value is not None:
                raise bad_request(f"{where}.{key} is not supported", f"{where}.{key}")

    @staticmethod
    def _text(content: Any, where: str, *, required: bool = False) -> str:
        """A string, or a list of text parts (joined by newlines)."""
        if content is None and not required:
            return ""
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            raise bad_request(f"{where} must be a string or a list of text parts", where)
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(
                    f"{where}[{j}]: only text parts are allowed here", f"{where}[{j}]"
                )
            parts.append(_part_text(part, f"{where}[{j}]"))
        return "\n".join(parts)

    def _user(self, content: Any, where: str, index: int) -> Message:
        if isinstance(content, str):
            return Message(Role.USER, content)
        if not isinstance(content, list):
            raise bad_request(
                f"{where}.content must be a string or a list of parts", f"{where}.content"
            )
        texts: list[str] = []
        attachments: list[Attachment] = []
        for j, part in enumerate(content):
            at = f"{where}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(_part_text(part, at))
            elif kind == "image_url":
                attachments.append(self._image(part, at, index, len(attachments)))
            elif kind == "input_audio":
                attachments.append(self._audio(part, at))
            else:
                raise bad_request(
                    f"{at}: part type {kind!r} is not supported (text, image_url, input_audio)",
                    f"{at}.type",
                )
        return Message(Role.USER, "\n".join(texts), attachments=tuple(attachments))

    def _name(self, ext: str) -> str:
        self.attachments += 1
        return f"attachment-{self.attachments}.{ext}"

    def _image(self, part: Mapping[str, Any], at: str, message: int, k: int) -> Attachment:
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url:
            raise bad_request(f"{at}.image_url.url is required", f"{at}.image_url.url")
        where = f"{at}.image_url.url"
        if url.startswith("data:"):
            media_type, data = _data_url(url, where)
            if not media_type.startswith("image/"):
                raise bad_request(f"{where}: a data URL of {media_type}, not an image", where)
            return Attachment(self._name(media_type.split("/", 1)[1]), media_type, data)
        if url.startswith(("http://", "https://")):
            if not self.fetch_urls:
                raise bad_request(
                    f"{where}: image URLs are not fetched by this edge; send the image as a data "
                    "URL (data:image/png;base64,...), or allow its host with "
                    "UNIWIZARD_HTTP_IMAGE_HOSTS",
                    where,
                )
            self.urls.append(ImageUrl(url, where, message, k))
            return Attachment(self._name("img"), "image/png", b"")  # filled in once fetched
        raise bad_request(f"{where}: an image is a data: URL or an http(s) URL", where)

    def _audio(self, part: Mapping[str, Any], at: str) -> Attachment:
        audio = part.get("input_audio")
        if not isinstance(audio, dict):
            raise bad_request(f"{at}.input_audio must be an object", f"{at}.input_audio")
        fmt = audio.get("format")
        if fmt not in AUDIO_FORMATS:
            raise bad_request(
                f"{at}.input_audio.format must be wav or mp3", f"{at}.input_audio.format"
            )
        data = _base64(audio.get("data"), f"{at}.input_audio.data")
        return Attachment(self._name(fmt), AUDIO_FORMATS[fmt], data)

    def _assistant(self, m: Mapping[str, Any], where: str) -> Message:
        text = self._text(m.get("content"), f"{where}.content")
        calls = m.get("tool_calls") or []
        if not isinstance(calls, list):
            raise bad_request(f"{where}.tool_calls must be a list", f"{where}.tool_calls")
        tool_calls = tuple(_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls))
        if not text and not tool_calls:
            raise bad_request(
                f"{where}: an assistant message needs content or tool_calls", f"{where}.content"
            )
        return Message(Role.ASSISTANT, text, tool_calls=tool_calls)

    def _tool_result(self, m: Mapping[str, Any], where: str) -> Message:
        call_id = m.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise bad_request(f"{where}.tool_call_id is required", f"{where}.tool_call_id")
        text = self._text(m.get("content"), f"{where}.content", required=True)
        return Message(Role.TOOL, text, tool_call_id=call_id)


def _part_text(part: Mapping[str, Any], at: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{at}.text must be a string", f"{at}.text")
    return text


def _tool_call(c: Any, where: str) -> ToolCall:
    if not isinstance(c, dict) or c.get("type", "function") != "function":
        raise bad_request(f"{where}: only function calls are supported", f"{where}.type")
    fn = c.get("function")
    call_id = c.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"{where}.id is required", f"{where}.id")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise bad_request(f"{where}.function.name is required", f"{where}.function.name")
    arguments = fn.get("arguments", "{}")
    if not isinstance(arguments, str):
        raise bad_request(
            f"{where}.function.arguments must be JSON text (a string)",
            f"{where}.function.arguments",
        )
    try:
        json.loads(arguments or "{}")
    except ValueError:
        raise bad_request(
            f"{where}.function.arguments is not valid JSON", f"{where}.function.arguments"
        ) from None
    state = c.get("provider_state") or ""
    if not isinstance(state, str):
        raise bad_request(f"{where}.provider_state must be a string", f"{where}.provider_state")
    return ToolCall(call_id, fn["name"], arguments or "{}", provider_state=state)


def _data_url(url: str, where: str) -> tuple[str, bytes]:
    """``data:<media type>;base64,<data>`` -> (media type, bytes)."""
    head, sep, data = url.partition(",")
    params = head[len("data:") :].split(";")
    if not sep or "base64" not in params[1:]:
        raise bad_request(f"{where}: a data URL must be base64 (data:image/png;base64,...)", where)
    media_type = params[0].strip().lower()
    if not MEDIA_TYPE_RE.match(media_type):
        raise bad_request(f"{where}: {media_type!r} is not a media type like image/png", where)
    return media_type, _base64(data, where)


def _base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{where} must be base64 text", where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{where} is not valid base64", where) from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else "a number")


__all__ = ["ChatRequest", "ImageUrl", "parse_chat", "with_images"]
