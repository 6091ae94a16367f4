"""Deterministic answers and token counting.

Token counting (used for every ``usage`` block): :func:`count_tokens` counts
runs of word characters and single punctuation marks, i.e. the matches of the
regex ``\\w+|[^\\w\\s]``. ``"Hello, world!"`` is 4 tokens. Prompt usage is the
sum of :func:`count_tokens` over the request's text pieces (system prompt, every
message's text parts, in order; attachments and tool definitions count 0), see
:func:`count_prompt_tokens`. Completion usage is :func:`count_tokens` of the
answer text, or of ``name + json.dumps(arguments)`` for a tool call.

The normal answer is :func:`answer_text`: ``"Simulated answer from {model}: {digest}."``
(:func:`answer_lead`) followed by a few fixed sentences mentioning the number of words
of the last user message and the number of attachments seen.

A structured-output request (``Conversation.output``) is answered by :func:`structured_text`
instead: ``{"answer": <normal answer>}`` when any JSON object will do, else the minimal
instance of the schema (:mod:`uniwizard_sim.schema_instance`) with :func:`answer_lead` as
its strings, as ``json.dumps`` text (its spaces are where stream pieces split).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from uniwizard_sim.common import Answer, Conversation, Finish, ToolCall, ToolDef
from uniwizard_sim.faults import Fault
from uniwizard_sim.schema_instance import instance

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PIECE_RE = re.compile(r"\S+\s*")
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
WORDS_PER_CHUNK = 3


def count_tokens(text: str) -> int:
    """Deterministic token count: words plus punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def count_prompt_tokens(texts: tuple[str, ...] | list[str]) -> int:
    """Prompt tokens of a request: the sum of :func:`count_tokens` over its text pieces."""
    return sum(count_tokens(t) for t in texts)


def digest(text: str) -> str:
    """Short deterministic digest (8 hex chars of SHA-256)."""
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def answer_lead(model: str, last_user_text: str) -> str:
    """The first sentence of the normal answer."""
    return f"Simulated answer from {model}: {digest(last_user_text)}."


def answer_text(model: str, last_user_text: str, attachments: int) -> str:
    """The simulator's normal answer for a request."""
    words = len(last_user_text.split())
    word = "word" if words == 1 else "words"
    att = "attachment" if attachments == 1 else "attachments"
    return (
        f"{answer_lead(model, last_user_text)} "
        f"Your last message had {words} {word} and I saw {attachments} {att}. "
        "This reply is deterministic and comes from the uniwizard provider simulator. "
        "Nothing here was produced by a real model."
    )


def structured_text(conv: Conversation) -> str:
    """The JSON text answering a structured-output request (``conv.output`` is set)."""
    schema = conv.output.schema if conv.output is not None else None
    if schema is None:
        value: Any = {"answer": answer_text(conv.model, conv.last_user_text, conv.attachments)}
    else:
        value = instance(schema, answer_lead(conv.model, conv.last_user_text))
    return json.dumps(value, ensure_ascii=False)


def split_chunks(text: str, words_per_chunk: int = WORDS_PER_CHUNK) -> tuple[str, ...]:
    """Split text into stream pieces of a few words each; ``"".join`` gives the text back."""
    pieces = _PIECE_RE.findall(text)
    if not pieces:
        return (text,) if text else ()
    lead = text[: len(text) - len(text.lstrip())]
    out = ["".join(pieces[i : i + words_per_chunk]) for i in range(0, len(pieces), words_per_chunk)]
    out[0] = lead + out[0]
    return tuple(out)


def truncate_tokens(text: str, limit: int) -> str:
    """The prefix of ``text`` holding its first ``limit`` tokens."""
    if limit <= 0:
        return ""
    for i, m in enumerate(_TOKEN_RE.finditer(text)):
        if i == limit - 1:
            return text[: m.end()]
    return text


def _tool_mentioned(tools: tuple[ToolDef, ...], text: str) -> ToolDef | None:
    lowered = text.lower()
    for tool in tools:
        if tool.name and re.search(
            r"(?<![\w-])" + re.escape(tool.name.lower()) + r"(?![\w-])", lowered
        ):
            return tool
    return None


def _value_for(name: str, prop: Any) -> Any:
    if not isinstance(prop, dict):
        return f"sim-{name}"
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    typ = prop.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    typ = str(typ).lower() if typ is not None else "string"
    return {
        "integer": 1,
        "number": 1.0,
        "boolean": True,
        "array": [],
        "object": {},
    }.get(typ, f"sim-{name}")


def tool_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Deterministic arguments: one value per *required* property of the JSON schema.

    strings → ``"sim-<prop>"``, integer → 1, number → 1.0, boolean → true, array → [],
    object → {}, enum → its first value.
    """
    props = schema.get("properties")
    required = schema.get("required")
    if not isinstance(props, dict) or not isinstance(required, list):
        return {}
    return {r: _value_for(r, props.get(r)) for r in required if isinstance(r, str)}


def _finish_text(conv: Conversation, text: str, prompt: int, finish: Finish = "stop") -> Answer:
    if conv.max_tokens is not None and count_tokens(text) > conv.max_tokens:
        text, finish = truncate_tokens(text, conv.max_tokens), "length"
    return Answer(
        text=text,
        finish=finish,
        prompt_tokens=prompt,
        completion_tokens=count_tokens(text),
        chunks=split_chunks(text),
    )


def plan_answer(conv: Conversation, fault: Fault | None, call_id: str) -> Answer:
    """Decide what to answer, applying content-level faults.

    Content-level fault kinds: ``text``, ``empty``, ``refusal_text``,
    ``refusal_signal``, ``truncated``, ``content_filter`` (in-band providers only).
    Any other fault (or none) yields the normal answer / tool call.
    """
    prompt = count_prompt_tokens(conv.prompt_texts)
    kind = fault.kind if fault is not None else None
    if fault is not None:
        if kind == "text":
            return _finish_text(conv, fault.text or "", prompt)
        if kind == "empty":
            return Answer(text="", finish="stop", prompt_tokens=prompt, completion_tokens=0)
        if kind == "refusal_text":
            return _finish_text(conv, fault.text or REFUSAL_TEXT, prompt)
        if kind == "refusal_signal":
            refusal = fault.text or REFUSAL_TEXT
            finish: Finish = (
                "content_filter" if fault.finish_reason == "content_filter" else ("refusal")
            )
            return Answer(
                text=None,
                finish=finish,
                prompt_tokens=prompt,
                completion_tokens=count_tokens(refusal),
                chunks=split_chunks(refusal),
                refusal=refusal,
                safety_reason=fault.reason or "SAFETY",
            )
        if kind == "content_filter":
            return Answer(text=None, finish="blocked", prompt_tokens=prompt, completion_tokens=0)
    tool = _tool_mentioned(conv.tools, conv.last_user_text) if conv.tools else None
    if tool is not None:
        args = tool_arguments(tool.schema)
        return Answer(
            text=None,
            finish="tool",
            prompt_tokens=prompt,
            completion_tokens=count_tokens(tool.name + json.dumps(args)),
            tool_call=ToolCall(id=call_id, name=tool.name, arguments=args),
        )
    if conv.output is not None:
        text = structured_text(conv)
    else:
        text = answer_text(conv.model, conv.last_user_text, conv.attachments)
    if kind == "truncated":
        half = max(1, count_tokens(text) // 2)
        text = truncate_tokens(text, half)
        return Answer(
            text=text,
            finish="length",
            prompt_tokens=prompt,
            completion_tokens=count_tokens(text),
            chunks=split_chunks(text),
        )
    return _finish_text(conv, text, prompt)
