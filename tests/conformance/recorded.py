"""Recorded real exchanges: loading them, serving each recorded response byte for byte from a
local HTTP server, and reading what the provider said in them, independently of the adapters.

The exchanges are ``tests/data/conformance/real_exchanges.jsonl`` (a verbatim copy of the shared
set; see its README) or, to check another set of the same format, the file named by
``UNIWIZARD_CONFORMANCE_EXCHANGES``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from tests.stack import BACKENDS_YAML, ROOT, running_services
from uniwizard.config import dump_config, load_config
from uniwizard.config_types import MODALITIES, BackendConfig, Config
from uniwizard.server import Service
from uniwizard.types import BlindRequest, Message, Role, ToolCall, ToolDef, Usage

DATA = ROOT / "tests" / "data" / "conformance"
COPY = DATA / "real_exchanges.jsonl"
# The shared original, beside the repository (absent on a clean clone, e.g. in CI).
SHARED = ROOT.parent / "shared" / "conformance" / "real_exchanges.jsonl"
EXCHANGES = Path(os.environ.get("UNIWIZARD_CONFORMANCE_EXCHANGES") or COPY)
KEY_ENV = "UNIWIZARD_CONFORMANCE_KEY"

# Every backend is priced with all four prices different, so each kind of token shows in the
# cost (USD per 1000 tokens: Claude Sonnet's list prices).
PRICE_IN, PRICE_OUT, PRICE_CACHE_READ, PRICE_CACHE_WRITE = 0.003, 0.015, 0.0003, 0.00375

_ENDPOINTS = {
    "openai": re.compile(r"^(?P<base>.*)/chat/completions$"),
    "openai_compatible": re.compile(r"^(?P<base>.*)/chat/completions$"),
    "anthropic": re.compile(r"^(?P<base>.*)/messages$"),
    "gemini": re.compile(
        r"^(?P<base>.*)/models/(?P<model>[^/:]+):(?:generateContent|streamGenerateContent)$"
    ),
}


@dataclass(frozen=True)
class Exchange:
    index: int
    id: str
    provider: str
    method: str
    path: str
    request: dict[str, Any]
    status: int
    content_type: str
    body: str
    expect: dict[str, Any]

    @property
    def key(self) -> str:
        """The path segment (and backend key prefix) the replay server serves it under."""
        return f"x{self.index:02d}"

    @property
    def stream(self) -> bool:
        return self.request.get("stream") is True or ":streamGenerateContent" in self.path

    @property
    def is_error(self) -> bool:
        return bool(self.expect["error"])

    def base_and_model(self) -> tuple[str, str]:
        match = _ENDPOINTS[self.provider].match(self.path)
        assert match, f"{self.id}: unexpected recorded path {self.path}"
        model = match.groupdict().get("model") or str(self.request.get("model", ""))
        return match["base"], model


def load_exchanges(path: Path = EXCHANGES) -> list[Exchange]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(x for x in f if x.strip()):
            r = json.loads(line)
            out.append(
                Exchange(
                    index=i,
                    id=r["id"],
                    provider=r["provider"],
                    method=r["request"]["method"],
                    path=r["request"]["path"],
                    request=r["request"]["body"],
                    status=r["response"]["status"],
                    content_type=r["response"]["content_type"],
                    body=r["response"]["body"],
                    expect=r["expect"],
                )
            )
    return out


# -- what the provider said, read straight from the recorded body ----------------------------


def sse_data(body: str) -> list[str]:
    """The ``data`` of each event of an SSE body (lines joined), in order."""
    events = re.split(r"\r\n\r\n|\n\n|\r\r", body)
    out = []
    for event in events:
        lines = [
            ln[5:].removeprefix(" ")
            for ln in re.split(r"\r\n|\n|\r", event)
            if ln.startswith("data:")
        ]
        if lines:
            out.append("\n".join(lines))
    return out


def json_objects(ex: Exchange) -> list[dict[str, Any]]:
    """The body's JSON object, or every JSON event of a stream (``[DONE]`` left out)."""
    if not ex.content_type.startswith("text/event-stream"):
        value = json.loads(ex.body)
        return [value] if isinstance(value, dict) else [v for v in value if isinstance(v, dict)]
    out = []
    for data in sse_data(ex.body):
        try:
            value = json.loads(data)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def provider_error_message(ex: Exchange) -> str:
    """The provider's own words in an error body or error event (with OpenRouter's
    ``metadata.raw``, the upstream provider's words, when there is one)."""
    for obj in reversed(json_objects(ex)):
        err = obj.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            raw = (err.get("metadata") or {}).get("raw")
            return f"{err['message']}: {raw}" if isinstance(raw, str) else str(err["message"])
        if isinstance(err, str):
            return err
    raise AssertionError(f"{ex.id}: no error message in the recorded body")


# Gemini finish and block reasons that mean the provider blocked the answer.
GEMINI_BLOCKS = frozenset(
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
        "OTHER",
    }
)


def provider_refusal(ex: Exchange) -> str:
    """The provider's own refusal or block signal in the recorded answer, or "": OpenAI's
    ``refusal`` field or ``content_filter`` finish, Anthropic's ``refusal`` stop reason,
    Gemini's blocking finish reason or ``promptFeedback.blockReason``."""
    for obj in json_objects(ex):
        if ex.provider in ("openai", "openai_compatible"):
            for choice in obj.get("choices") or []:
                part = choice.get("message") or choice.get("delta") or {}
                if part.get("refusal"):
                    return "refusal"
                if choice.get("finish_reason") == "content_filter":
                    return "content_filter"
        elif ex.provider == "anthropic":
            delta = obj.get("delta") if obj.get("type") == "message_delta" else obj
            if isinstance(delta, dict) and delta.get("stop_reason") == "refusal":
                return "refusal"
        else:
            block = (obj.get("promptFeedback") or {}).get("blockReason")
            if block:
                return str(block)
            for cand in obj.get("candidates") or []:
                if cand.get("finishReason") in GEMINI_BLOCKS - {"OTHER"}:
                    return str(cand["finishReason"])
    return ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def recorded_usage(ex: Exchange) -> Usage | None:
    """The usage the provider reported, counted the way Uniwizard (and the OpenTelemetry GenAI
    conventions) count it: ``input_tokens`` = all input, cache reads and writes included;
    ``output_tokens`` = all output, reasoning included. Per provider:

    * OpenAI and OpenAI-compatible: the ``usage`` object of the body, or of whichever stream
      chunk carries one; Groq's older streams carry it only in ``x_groq.usage``.
      ``prompt_tokens`` already includes ``prompt_tokens_details.cached_tokens`` and
      ``completion_tokens`` already includes ``completion_tokens_details.reasoning_tokens``.
    * Anthropic: ``usage`` of the body, or ``message_start``'s then ``message_delta``'s (the
      later counts win). ``input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
      ``cache_creation_input_tokens``: input = the three together. ``output_tokens`` includes
      thinking (not reported apart).
    * Gemini: the last ``usageMetadata``. ``promptTokenCount`` includes
      ``cachedContentTokenCount`` but not ``toolUsePromptTokenCount``; ``candidatesTokenCount``
      excludes ``thoughtsTokenCount``: input = prompt + tool use, output = candidates +
      thoughts, reasoning = thoughts.

    None when the provider reported none.
    """
    objs = json_objects(ex)
    if ex.provider in ("openai", "openai_compatible"):
        raw = None
        for obj in objs:
            x_groq = obj.get("x_groq")
            if isinstance(obj.get("usage"), dict):
                raw = obj["usage"]
            elif isinstance(x_groq, dict) and isinstance(x_groq.get("usage"), dict):
                raw = x_groq["usage"]
        if raw is None:
            return None
        details = raw.get("prompt_tokens_details") or {}
        out_details = raw.get("completion_tokens_details") or {}
        return Usage(
            input_tokens=_int(raw.get("prompt_tokens")),
            output_tokens=_int(raw.get("completion_tokens")),
            cached_input_tokens=_int(details.get("cached_tokens")),
            reasoning_tokens=_int(out_details.get("reasoning_tokens")),
        )
    if ex.provider == "anthropic":
        merged: dict[str, Any] = {}
        for obj in objs:
            if obj.get("type") == "message" and isinstance(obj.get("usage"), dict):
                merged.update(obj["usage"])
            if obj.get("type") == "message_start":
                merged.update(obj["message"].get("usage") or {})
            if obj.get("type") == "message_delta" and isinstance(obj.get("usage"), dict):
                merged.update({k: v for k, v in obj["usage"].items() if v is not None})
        if not merged:
            return None
        read = _int(merged.get("cache_read_input_tokens"))
        write = _int(merged.get("cache_creation_input_tokens"))
        return Usage(
            input_tokens=_int(merged.get("input_tokens")) + read + write,
            output_tokens=_int(merged.get("output_tokens")),
            cached_input_tokens=read,
            cache_write_tokens=write,
        )
    meta = None
    for obj in objs:
        if isinstance(obj.get("usageMetadata"), dict):
            meta = obj["usageMetadata"]
    if meta is None:
        return None
    thoughts = _int(meta.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=_int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount")),
        output_tokens=_int(meta.get("candidatesTokenCount")) + thoughts,
        cached_input_tokens=_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def hand_priced(usage: Usage) -> float:
    """The cost of ``usage`` at the replay backends' prices, written out by hand."""
    plain = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    return (
        plain * PRICE_IN
        + usage.cached_input_tokens * PRICE_CACHE_READ
        + usage.cache_write_tokens * PRICE_CACHE_WRITE
        + usage.output_tokens * PRICE_OUT
    ) / 1000


# -- the recorded request, as a blind request ------------------------------------------------


def recorded_tools(ex: Exchange) -> list[dict[str, Any]]:
    """The tools the recorded request offered, as ``--tools FILE`` takes them."""
    body = ex.request
    out: list[dict[str, Any]] = []
    for tool in body.get("tools") or []:
        if ex.provider == "gemini":
            for d in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
                params = (
                    d.get("parameters")
                    or d.get("parametersJsonSchema")
                    or d.get("parameters_json_schema")
                    or {"type": "object", "properties": {}}
                )
                out.append(
                    {
                        "name": d["name"],
                        "description": d.get("description", ""),
                        "parameters": params,
                    }
                )
        elif ex.provider == "anthropic":
            if "input_schema" in tool:
                out.append(
                    {
                        "name": tool["name"],
                        "description": tool.get("description", ""),
                        "parameters": tool["input_schema"],
                    }
                )
        elif tool.get("type") == "function":
            fn = tool["function"]
            out.append(
                {
                    "name": fn["name"],
                    "description": fn.get("description", ""),
                    "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
                }
            )
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _openai_messages(body: dict[str, Any]) -> tuple[str, list[Message]]:
    system, messages = [], []
    for m in body["messages"]:
        role = m["role"]
        if role in ("system", "developer"):
            system.append(_text(m.get("content")))
        elif role == "user":
            messages.append(Message(Role.USER, _text(m.get("content"))))
        elif role == "assistant":
            calls = tuple(
                ToolCall(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
                for c in m.get("tool_calls") or []
            )
            messages.append(Message(Role.ASSISTANT, _text(m.get("content")), tool_calls=calls))
        elif role == "tool":
            messages.append(
                Message(Role.TOOL, _text(m.get("content")), tool_call_id=m["tool_call_id"])
            )
    return "\n".join(system), messages


def _anthropic_messages(body: dict[str, Any]) -> tuple[str, list[Message]]:
    system = body.get("system") or ""
    messages: list[Message] = []
    for m in body["messages"]:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if m["role"] == "assistant":
            calls = tuple(
                ToolCall(b["id"], b["name"], json.dumps(b.get("input") or {}))
                for b in blocks
                if b.get("type") == "tool_use"
            )
            messages.append(Message(Role.ASSISTANT, _text(blocks), tool_calls=calls))
            continue
        for b in blocks:
            if b.get("type") == "tool_result":
                messages.append(
                    Message(Role.TOOL, _text(b.get("content")), tool_call_id=b["tool_use_id"])
                )
        if _text(blocks):
            messages.append(Message(Role.USER, _text(blocks)))
    return _text(system), messages


def _gemini_messages(body: dict[str, Any]) -> tuple[str, list[Message]]:
    sys_inst = body.get("systemInstruction") or body.get("system_instruction") or {}
    system = "".join(p.get("text", "") for p in sys_inst.get("parts", []))
    messages: list[Message] = []
    ids: dict[str, list[str]] = {}  # function name -> ids of its calls not yet answered
    for n, c in enumerate(body["contents"]):
        parts = c.get("parts") or []
        text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str))
        if c.get("role") == "model":
            calls = []
            for i, p in enumerate(parts):
                fc = p.get("functionCall") or p.get("function_call")
                if fc:
                    call_id = fc.get("id") or f"call_{n}_{i}"
                    ids.setdefault(fc["name"], []).append(call_id)
                    calls.append(ToolCall(call_id, fc["name"], json.dumps(fc.get("args") or {})))
            messages.append(Message(Role.ASSISTANT, text, tool_calls=tuple(calls)))
            continue
        for p in parts:
            fr = p.get("functionResponse") or p.get("function_response")
            if fr:
                call_id = (ids.get(fr["name"]) or [""]).pop(0)
                messages.append(
                    Message(Role.TOOL, json.dumps(fr.get("response") or {}), tool_call_id=call_id)
                )
        if text:
            messages.append(Message(Role.USER, text))
    return system, messages


def blind_request(ex: Exchange) -> BlindRequest:
    """The recorded request as a blind request: its system prompt, its conversation (tool
    calls and results included) and its tools. A request this cannot read becomes its last
    user text (the response under test does not depend on it)."""
    tools = tuple(
        ToolDef(t["name"], t["description"], json.dumps(t["parameters"]))
        for t in recorded_tools(ex)
    )
    reader = {
        "openai": _openai_messages,
        "openai_compatible": _openai_messages,
        "anthropic": _anthropic_messages,
        "gemini": _gemini_messages,
    }[ex.provider]
    try:
        system, messages = reader(ex.request)
    except (KeyError, TypeError, AttributeError):
        system, messages = "", []
    if not messages or messages[0].role is not Role.USER:
        messages = [Message(Role.USER, last_user_text(ex))]
    return BlindRequest(messages=tuple(messages), system_prompt=system, tools=tools)


def last_user_text(ex: Exchange) -> str:
    """The last user text of the recorded request (what ``uniwizard think`` is given)."""
    try:
        _, messages = {
            "openai": _openai_messages,
            "openai_compatible": _openai_messages,
            "anthropic": _anthropic_messages,
            "gemini": _gemini_messages,
        }[ex.provider](ex.request)
    except (KeyError, TypeError, AttributeError):
        messages = []
    texts = [m.text for m in messages if m.role is Role.USER and m.text.strip()]
    return texts[-1] if texts else "Replay the recorded answer."


# -- the replay server and the services ------------------------------------------------------


@dataclass
class Received:
    """One request the replay server got."""

    key: str
    method: str
    path: str  # after the backend's own segment
    query: dict[str, str]
    body: Any


@dataclass
class ReplayServer:
    """Serves each exchange's recorded status, content type and body, byte for byte, at
    ``/{backend key}{recorded path}``; anything else is a 404 naming what did not match."""

    exchanges: dict[str, Exchange]  # backend key -> exchange
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{key}/{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        path = "/" + request.match_info["rest"]
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.received.append(Received(key, request.method, path, dict(request.query), body))
        ex = self.exchanges.get(key)
        if ex is None or (request.method, path) != (ex.method, ex.path):
            want = f"{ex.method} {ex.path}" if ex else "no exchange"
            return web.json_response(
                {"error": {"message": f"replay: got {request.method} {path}, recorded {want}"}},
                status=404,
            )
        return web.Response(
            status=ex.status,
            body=ex.body.encode("utf-8"),
            headers={"Content-Type": ex.content_type},
        )


# One backend per exchange and use, so health and request counts stay independent.
USES = ("call", "cli", "text", "span")

T = TypeVar("T")


def backend_for(ex: Exchange, use: str, root: str) -> BackendConfig:
    base, model = ex.base_and_model()
    key = f"{ex.key}-{use}"
    return BackendConfig(
        key=key,
        provider=ex.provider,
        url=f"{root}/{key}{base}",
        model=model,
        api_key_env=KEY_ENV,
        cost_per_1k_input=PRICE_IN,
        cost_per_1k_output=PRICE_OUT,
        cost_per_1k_cached_input=PRICE_CACHE_READ,
        cost_per_1k_cache_write=PRICE_CACHE_WRITE,
        max_context=2_000_000,
        max_output_tokens=1024,
        timeout=20.0,
        first_token_timeout=20.0,
        stream_idle_timeout=20.0,
        modalities=MODALITIES,
        allowed_fails=1000,
    )


class ReplayStack:
    """The replay server and the real registry, caller and router (their config pointing every
    backend at the replay server) on a thread of their own, for the blocking CLI."""

    def __init__(self, exchanges: list[Exchange]):
        self.exchanges = exchanges
        self.tmp = Path(tempfile.mkdtemp(prefix="uniwizard-replay-"))
        self.server = ReplayServer({f"{ex.key}-{use}": ex for ex in exchanges for use in USES})
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        self.caller: Service | None = None
        self.router: Service | None = None
        self._saved_key = os.environ.get(KEY_ENV)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        self._stop = asyncio.Event()
        try:
            await self.server.start()
            # The seed backends stay (the routing policy names them), pointed at the replay
            # server, which has nothing for them: only pinned backends are used here.
            seed = load_config(BACKENDS_YAML).backends
            backends = {k: replace(b, url=f"{self.server.url}/seed/{k}") for k, b in seed.items()}
            for ex in self.exchanges:
                for use in USES:
                    backends[f"{ex.key}-{use}"] = backend_for(ex, use, self.server.url)
            path = self.tmp / "backends.yaml"
            path.write_text(dump_config(Config(path=str(path), backends=backends)))
            async with running_services(str(path), self.tmp) as (_, caller, router, _edge):
                self.caller, self.router = caller, router
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            await self.server.stop()

    def __enter__(self) -> ReplayStack:
        os.environ[KEY_ENV] = "replay-key"
        self._thread.start()

        async def begin() -> None:
            ready: asyncio.Future[None] = self._loop.create_future()
            self._done = asyncio.ensure_future(self._serve(ready))
            await ready

        self.run(begin())
        return self

    def __exit__(self, *exc: object) -> None:
        async def end() -> None:
            if self._stop is not None:
                self._stop.set()
            if self._done is not None:
                await self._done
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.run(end())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self._saved_key is None:
                os.environ.pop(KEY_ENV, None)
            else:
                os.environ[KEY_ENV] = self._saved_key

    def requests_for(self, key: str) -> list[Received]:
        return [r for r in self.server.received if r.key == key]
