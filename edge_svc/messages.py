"""OpenAI's ``messages`` -> our system prompt and messages. Pure: no I/O.

``system`` and ``developer`` messages become the system prompt (only before the conversation
starts: our contract has one system prompt); ``user`` text parts are joined by newlines, images
come as data URLs (or http(s) URLs left for the edge to fetch, where it may) and audio as
``input_audio``; ``assistant`` messages keep their tool calls (with our ``provider_state``);
``tool`` messages answer a call by its id. ``name`` is dropped: nothing about who asks leaves.
Anything else is a 400 naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_svc.errors import bad_request
from uniwizard.limits import MEDIA_TYPE_RE
from uniwizard.types import Attachment, Message, Role, ToolCall

AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}


@dataclass(frozen=True, slots=True)
class ImageUrl:
    """An http(s) image the edge must fetch before sending: it stands in the task as an
    attachment with no data (message ``message``, attachment ``attachment``)."""

    url: str
    param: str  # where the request had it: messages[1].content[0].image_url.url
    message: int
    attachment: int


class MessageReader:
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
