"""The simulator's aiohttp application, request dispatch and fault execution.

Control API (JSON, same server):

- ``POST /_sim/faults`` ``{"target", "fault", "times"?, "paths"?}`` → ``{"id", "rule"}``
  (see :mod:`uniwizard_sim.faults` for the fault syntax); ``GET /_sim/faults`` lists
  active rules; ``DELETE /_sim/faults[?target=x]`` removes them.
- ``GET /_sim/requests[?target=x]`` → ``{"requests": [...]}``; ``DELETE /_sim/requests``.
- ``PUT /_sim/models`` ``{"target", "models": [...] | null}`` overrides a target's listing.
- ``POST /_sim/reset`` clears faults, requests and model overrides.
- ``GET /_sim/health`` → ``{"ok": true}``.

Order of checks for an API request: record it → route (unknown path: 404) → auth →
(model listing: ``models`` faults) → JSON / request validation → ``completion`` fault →
answer. Requests refused by auth or validation do not consume fault rules.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiohttp import web

from uniwizard_sim import anthropic, gemini, openai, sse
from uniwizard_sim.common import Answer, Conversation, Dialect, ErrorReply, Ids
from uniwizard_sim.faults import Fault, FaultError, FaultRule, parse_fault
from uniwizard_sim.routes import guess_provider, resolve
from uniwizard_sim.state import SimState
from uniwizard_sim.textgen import plan_answer
from uniwizard_sim.urls import base_url, sdk_base_url

STATE_KEY = web.AppKey("uniwizard_sim_state", SimState)
SHUTDOWN_KEY = web.AppKey("uniwizard_sim_shutdown", asyncio.Event)
DIALECTS: dict[str, Dialect] = {"openai": openai, "anthropic": anthropic, "gemini": gemini}
_CALL_PREFIX = {"openai": "call_", "anthropic": "toolu_", "gemini": "call_"}
_JSON_HEADERS = {"Content-Type": "application/json"}
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_POLL = 0.25
_POSITIONAL = frozenset({"stall", "cut", "malformed_chunk"})


# -- small helpers ------------------------------------------------------------------------


def _json(
    record: dict[str, Any] | None, status: int, obj: Any, headers: dict[str, str] | None = None
) -> web.Response:
    if record is not None:
        record["status"] = status
    hdrs = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
    return web.Response(status=status, body=sse.dumps(obj).encode(), headers=hdrs)


def _error(record: dict[str, Any], err: ErrorReply) -> web.Response:
    return _json(record, err.status, err.body, err.headers)


def _client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _wait(request: web.BaseRequest, seconds: float) -> bool:
    """Sleep up to ``seconds``; False if the client left or the server is shutting down."""
    shutdown = request.app[SHUTDOWN_KEY] if isinstance(request, web.Request) else None
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        if _client_gone(request) or (shutdown is not None and shutdown.is_set()):
            return False
        await asyncio.sleep(min(left, _POLL))


def _drop(request: web.BaseRequest, *, reset: bool) -> None:
    """Close the connection: ``reset`` sends a TCP RST, else a FIN after flushing."""
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


def _ids(record: dict[str, Any]) -> Ids:
    return Ids(seq=record["seq"], created=int(record["time"]))


# -- API requests -------------------------------------------------------------------------


async def api_handler(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    target = request.match_info["target"]
    tail = request.match_info["tail"]
    headers = request.headers
    route = resolve(request.method, tail, headers)
    body: Any = None
    bad_json = False
    if request.can_read_body:
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
    record = state.requests.add(
        target=target,
        provider=route.provider if route is not None else None,
        method=request.method,
        path=request.path,
        query=request.query,
        headers=headers.items(),
        body=body,
    )
    if route is None:
        return _error(record, DIALECTS[guess_provider(tail, headers)].not_found(request.path))
    mod = DIALECTS[route.provider]
    auth = mod.auth_error(headers, request.query, target)
    if auth is not None:
        return _error(record, auth)
    if route.op != "generate":
        return await _models(request, record, state, mod, target, route.op, route.model)
    if bad_json:
        return _error(record, mod.invalid_json())
    conv = mod.parse_request(body, model=route.model, stream=route.stream)
    if isinstance(conv, ErrorReply):
        return _error(record, conv)
    fault = state.faults.take(target, "completion")
    ids = _ids(record)
    call_id = _CALL_PREFIX[route.provider] + ids.suffix
    if fault is None:
        answer = plan_answer(conv, None, call_id)
        if not conv.stream:
            return _json(record, 200, mod.build_response(conv, answer, ids))
        return await _stream(request, record, mod, conv, answer, ids, None)
    record["fault"] = fault.kind
    return await _faulty(request, record, mod, conv, fault, ids, call_id)


async def _models(
    request: web.Request,
    record: dict[str, Any],
    state: SimState,
    mod: Dialect,
    target: str,
    op: str,
    model: str | None,
) -> web.StreamResponse:
    fault = state.faults.take(target, "models")
    models = state.models.get(target) or list(mod.DEFAULT_MODELS)
    if fault is None:
        if op == "model":
            return _json(record, 200, mod.model_info(model or ""))
        return _json(record, 200, mod.list_models(models))
    record["fault"] = fault.kind
    kind = fault.kind
    if kind == "status":
        assert fault.status is not None
        err = mod.status_error(
            fault.status,
            code=fault.code,
            message=fault.message,
            retry_after=fault.retry_after,
            retry_after_ms=fault.retry_after_ms,
        )
        return _error(record, err)
    if kind == "reset":
        _drop(request, reset=True)
        return web.Response()
    if kind in ("hang", "delay", "slow_first_token", "stall"):
        if not await _wait(request, fault.seconds or 0.0) or kind in ("hang", "stall"):
            _drop(request, reset=False)
            return web.Response()
    if kind in ("malformed_chunk", "cut"):
        payload = sse.dumps(mod.list_models(models)).encode()
        if kind == "malformed_chunk":
            record["status"] = 200
            return web.Response(
                status=200, body=payload[: len(payload) // 2], headers=_JSON_HEADERS
            )
        return await _partial_body(request, record, payload, 0.0)
    if kind == "empty":
        return _json(record, 200, mod.list_models([]))
    if op == "model":
        return _json(record, 200, mod.model_info(model or ""))
    return _json(record, 200, mod.list_models(models))


async def _partial_body(
    request: web.Request, record: dict[str, Any], payload: bytes, stall: float
) -> web.StreamResponse:
    """Headers announcing the whole body, half of it, (a stall,) then a closed connection."""
    resp = web.StreamResponse(status=200, headers=_JSON_HEADERS)
    resp.content_length = len(payload)
    record["status"] = 200
    await resp.prepare(request)
    await resp.write(payload[: len(payload) // 2])
    if stall:
        await _wait(request, stall)
    _drop(request, reset=False)
    return resp


async def _faulty(
    request: web.Request,
    record: dict[str, Any],
    mod: Dialect,
    conv: Conversation,
    fault: Fault,
    ids: Ids,
    call_id: str,
) -> web.StreamResponse:
    kind = fault.kind
    if kind == "status":
        assert fault.status is not None
        err = mod.status_error(
            fault.status,
            code=fault.code,
            message=fault.message,
            retry_after=fault.retry_after,
            retry_after_ms=fault.retry_after_ms,
            model=conv.model,
        )
        if not conv.stream or fault.after_chunks is None:
            return _error(record, err)
    elif kind == "content_filter":
        cf = mod.content_filter_error(fault.message)
        if cf is not None:
            return _error(record, cf)
    elif kind == "reset":
        _drop(request, reset=True)
        return web.Response()
    elif kind == "hang":
        await _wait(request, fault.seconds or 0.0)
        _drop(request, reset=False)
        return web.Response()
    elif kind == "delay" or (kind == "slow_first_token" and not conv.stream):
        if not await _wait(request, fault.seconds or 0.0):
            return web.Response()
    answer = plan_answer(conv, fault, call_id)
    if conv.stream:
        return await _stream(request, record, mod, conv, answer, ids, fault)
    if kind == "malformed_chunk":
        record["status"] = 200
        return web.Response(status=200, body=mod.MALFORMED_BODY, headers=_JSON_HEADERS)
    if kind in ("cut", "stall"):
        payload = sse.dumps(mod.build_response(conv, answer, ids)).encode()
        stall = (fault.seconds or 0.0) if kind == "stall" else 0.0
        return await _partial_body(request, record, payload, stall)
    return _json(record, 200, mod.build_response(conv, answer, ids))


async def _stream(
    request: web.Request,
    record: dict[str, Any],
    mod: Dialect,
    conv: Conversation,
    answer: Answer,
    ids: Ids,
    fault: Fault | None,
) -> web.StreamResponse:
    events = mod.stream_events(conv, answer, ids)
    if mod is gemini and request.query.get("alt") != "sse":
        # streamGenerateContent without alt=sse: the real API answers one JSON array.
        items = [ev.frame[len(b"data: ") :].strip() for ev in events]
        record["status"] = 200
        return web.Response(body=b"[" + b",".join(items) + b"]", headers=_JSON_HEADERS)
    resp = web.StreamResponse(status=200, headers=_SSE_HEADERS)
    record["status"] = 200
    try:
        await resp.prepare(request)
        if fault is None:
            for ev in events:
                await resp.write(ev.frame)
            await resp.write_eof()
            return resp
        kind = fault.kind
        if kind == "slow_first_token" and not await _wait(request, fault.seconds or 0.0):
            return resp
        pos = -1
        if kind in _POSITIONAL or (kind == "status" and fault.after_chunks is not None):
            pos = sse.fault_position([e.kind for e in events], fault.after_chunks or 0)
        gap = (fault.seconds or 0.0) if kind == "slow_stream" else 0.0
        for i, item in enumerate([*events, None]):
            if i == pos:
                if kind == "stall":
                    await _wait(request, fault.seconds or 0.0)
                    _drop(request, reset=False)
                    return resp
                if kind == "cut":
                    _drop(request, reset=False)
                    return resp
                if kind == "malformed_chunk":
                    await resp.write(mod.MALFORMED_FRAME)
                if kind == "status":
                    assert fault.status is not None
                    err = mod.status_error(fault.status, code=fault.code, message=fault.message)
                    await resp.write(mod.stream_error_event(err))
                    await resp.write_eof()
                    return resp
            if item is None:
                break
            ev = item
            if kind == "no_done" and ev.kind == "done":
                continue
            if gap and i and not await _wait(request, gap):
                return resp
            await resp.write(ev.frame)
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


# -- control API --------------------------------------------------------------------------


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise FaultError(f"body is not valid JSON: {exc}") from exc


async def add_fault(request: web.Request) -> web.Response:
    try:
        rule = request.app[STATE_KEY].faults.add_json(await _body(request))
    except FaultError as exc:
        return _json(None, 400, {"error": str(exc)})
    return _json(None, 200, {"id": rule.id, "rule": rule.to_json()})


async def list_faults(request: web.Request) -> web.Response:
    return _json(
        None, 200, {"faults": [r.to_json() for r in request.app[STATE_KEY].faults.rules()]}
    )


async def clear_faults(request: web.Request) -> web.Response:
    removed = request.app[STATE_KEY].faults.clear(request.query.get("target"))
    return _json(None, 200, {"removed": removed})


async def list_requests(request: web.Request) -> web.Response:
    records = request.app[STATE_KEY].requests.list(request.query.get("target"))
    return _json(None, 200, {"requests": records})


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE_KEY].requests.clear()
    return _json(None, 200, {"ok": True})


async def set_models(request: web.Request) -> web.Response:
    try:
        raw = await _body(request)
    except FaultError as exc:
        return _json(None, 400, {"error": str(exc)})
    target = raw.get("target") if isinstance(raw, dict) else None
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(target, str) or not target:
        return _json(None, 400, {"error": "'target' must be a non-empty string"})
    state = request.app[STATE_KEY]
    if models is None:
        state.models.pop(target, None)
    elif isinstance(models, list) and all(isinstance(m, str) and m for m in models):
        state.models[target] = list(models)
    else:
        return _json(None, 400, {"error": "'models' must be a list of model names or null"})
    return _json(None, 200, {"ok": True})


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.faults.clear()
    state.requests.clear()
    state.models.clear()
    return _json(None, 200, {"ok": True})


async def health(request: web.Request) -> web.Response:
    return _json(None, 200, {"ok": True})


async def _on_shutdown(app: web.Application) -> None:
    app[SHUTDOWN_KEY].set()


def make_app(state: SimState | None = None) -> web.Application:
    """The simulator application (control API under ``/_sim``, providers under ``/{target}``)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state if state is not None else SimState()
    app[SHUTDOWN_KEY] = asyncio.Event()
    app.on_shutdown.append(_on_shutdown)
    app.router.add_post("/_sim/faults", add_fault)
    app.router.add_get("/_sim/faults", list_faults)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_get("/_sim/requests", list_requests)
    app.router.add_delete("/_sim/requests", clear_requests)
    app.router.add_put("/_sim/models", set_models)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/health", health)
    app.router.add_route("*", r"/{target:[A-Za-z0-9_-]+}/{tail:.*}", api_handler)
    return app


# -- running in-process -------------------------------------------------------------------


async def start_simulator(
    host: str = "127.0.0.1", port: int = 0, *, state: SimState | None = None
) -> tuple[web.AppRunner, str]:
    """Start the simulator on ``host:port`` (0 = ephemeral); returns ``(runner, root_url)``."""
    runner = web.AppRunner(
        make_app(state), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}"


async def stop_simulator(runner: web.AppRunner) -> None:
    """Stop a simulator started by :func:`start_simulator` (hangs and stalls are released)."""
    runner.app[SHUTDOWN_KEY].set()
    await runner.cleanup()


stop = stop_simulator


def sim_state(runner: web.AppRunner) -> SimState:
    """The in-process state of a running simulator (faults, request record)."""
    return runner.app[STATE_KEY]


class RunningSimulator:
    """A started simulator with in-process shortcuts (no HTTP needed to set faults)."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.runner = runner
        self.url = url
        self.state = sim_state(runner)

    def base_url(self, target: str, provider: str) -> str:
        return base_url(self.url, target, provider)

    def sdk_base_url(self, target: str, provider: str) -> str:
        return sdk_base_url(self.url, target, provider)

    def add_fault(
        self,
        target: str,
        fault: dict[str, Any],
        times: int | None = None,
        paths: str = "completion",
    ) -> FaultRule:
        body: dict[str, Any] = {"target": target, "fault": fault, "times": times, "paths": paths}
        return self.state.faults.add_json(body)

    def clear_faults(self, target: str | None = None) -> int:
        return self.state.faults.clear(target)

    def requests(self, target: str | None = None) -> list[dict[str, Any]]:
        return self.state.requests.list(target)


@asynccontextmanager
async def running_simulator(
    host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """``async with running_simulator() as sim: ...`` — start, yield, stop."""
    runner, url = await start_simulator(host, port)
    try:
        yield RunningSimulator(runner, url)
    finally:
        await stop_simulator(runner)


__all__ = [
    "RunningSimulator",
    "make_app",
    "parse_fault",
    "running_simulator",
    "sim_state",
    "start_simulator",
    "stop",
    "stop_simulator",
]
