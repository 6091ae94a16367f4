"""Golden-file plumbing for the provider adapter tests.

Layout, under ``tests/data/golden/<provider>/``:

- ``request_<case>.json``: ``{"input": {"backend", "api_key", "stream", "request"}, "expected":
  {"method", "url", "headers", "json"}}`` or ``"expected_error": {"type", "message"}``;
- ``response_<case>.json``: ``{"body": {...}}`` or ``{"body_text": "..."}`` plus ``"expected"``
  (a ParsedResponse) or ``"expected_error"``;
- ``error_<case>.json``: ``{"status", "headers", "body" | "body_text"}`` plus
  ``"expected"`` (a Failure);
- ``stream_<case>.sse``: a raw SSE transcript as the provider sends it, and
  ``stream_<case>.json`` with ``"expected"``: the deltas, ``done`` and the final result or error.

Inputs are written by hand; the ``expected`` parts can be regenerated deliberately with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/caller`` — then read the diff before committing it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from uniwizard.config_types import BackendConfig
from uniwizard.providers.base import (
    Adapter,
    MalformedResponse,
    ProviderStreamError,
    StreamIncomplete,
    UnsupportedInput,
)
from uniwizard.providers.sse import SSEDecoder
from uniwizard.types import Attachment, BlindRequest, Message, Role, ToolCall, ToolDef

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def files(provider: str, prefix: str, suffix: str = ".json") -> list[Path]:
    found = sorted((GOLDEN / provider).glob(f"{prefix}_*{suffix}"))
    assert found, f"no golden files {provider}/{prefix}_*{suffix}"
    return found


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def jsonable(value: Any) -> Any:
    """Dataclasses → dicts, tuples → lists, enums → values: what the golden JSON holds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value))


def check(path: Path, data: dict[str, Any], key: str, actual: Any) -> None:
    """Compare ``actual`` with ``data[key]``, or rewrite it under UPDATE_GOLDEN=1."""
    actual = jsonable(actual)
    if UPDATE:
        for other in ("expected", "expected_error"):
            data.pop(other, None)
        data[key] = actual
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    assert key in data, f"{path.name}: no {key!r} (run with UPDATE_GOLDEN=1 and review)"
    assert actual == data[key]


def backend_from(d: dict[str, Any]) -> BackendConfig:
    return BackendConfig(**d)


def request_from(d: dict[str, Any]) -> BlindRequest:
    messages = tuple(
        Message(
            role=Role(m["role"]),
            text=m.get("text", ""),
            attachments=tuple(
                Attachment(a["name"], a["media_type"], base64.b64decode(a["data_b64"]))
                for a in m.get("attachments", ())
            ),
            tool_calls=tuple(ToolCall(**c) for c in m.get("tool_calls", ())),
            tool_call_id=m.get("tool_call_id", ""),
        )
        for m in d["messages"]
    )
    return BlindRequest(
        messages=messages,
        system_prompt=d.get("system_prompt", ""),
        tools=tuple(ToolDef(**t) for t in d.get("tools", ())),
        max_output_tokens=d.get("max_output_tokens", 0),
        temperature=d.get("temperature"),
    )


def body_bytes(data: dict[str, Any]) -> bytes:
    if "body_text" in data:
        return str(data["body_text"]).encode()
    return json.dumps(data["body"]).encode()


def run_request_case(adapter: Adapter, path: Path) -> None:
    data = load(path)
    inp = data["input"]
    try:
        built = adapter.build_request(
            backend_from(inp["backend"]),
            request_from(inp["request"]),
            inp["api_key"],
            stream=inp["stream"],
        )
    except UnsupportedInput as exc:
        check(path, data, "expected_error", {"type": "UnsupportedInput", "message": str(exc)})
        return
    check(path, data, "expected", built)


def run_response_case(adapter: Adapter, path: Path) -> None:
    data = load(path)
    try:
        parsed = adapter.parse_response(body_bytes(data))
    except MalformedResponse as exc:
        check(path, data, "expected_error", {"type": "MalformedResponse", "message": str(exc)})
        return
    except ProviderStreamError as exc:  # an error object in a 200 body
        check(
            path,
            data,
            "expected_error",
            {"type": "ProviderError", "failure": jsonable(exc.failure)},
        )
        return
    check(path, data, "expected", parsed)


def run_error_case(adapter: Adapter, path: Path) -> None:
    data = load(path)
    headers = dict(data.get("headers", {}))
    error = adapter.parse_error(data["status"], headers, body_bytes(data))
    check(path, data, "expected", error)


def run_stream(adapter: Adapter, raw: bytes, chunk_size: int) -> dict[str, Any]:
    """Decode and feed a transcript in ``chunk_size`` pieces; describe everything that happens."""
    decoder = SSEDecoder()
    state = adapter.new_stream()
    deltas: list[Any] = []
    outcome: dict[str, Any] = {}

    def feed_all(events: list[Any]) -> bool:
        for event in events:
            try:
                for delta in state.feed(event):
                    deltas.append(jsonable(delta))
            except MalformedResponse as exc:
                outcome["raised"] = {"type": "MalformedResponse", "message": str(exc)}
                return False
            except ProviderStreamError as exc:
                outcome["raised"] = {"type": "ProviderStreamError", "error": jsonable(exc.failure)}
                return False
        return True

    ok = True
    for start in range(0, len(raw), chunk_size):
        if not feed_all(decoder.feed(raw[start : start + chunk_size])):
            ok = False
            break
    if ok:
        ok = feed_all(decoder.close())
    result: dict[str, Any] = {
        "deltas": _merge_text(deltas),
        "finish_seen": state.finish_seen,
        "complete": state.complete,
    }
    if not ok:
        result.update(outcome)
        return result
    try:
        result["result"] = jsonable(state.finish())
    except StreamIncomplete as exc:
        result["raised"] = {"type": "StreamIncomplete", "message": str(exc)}
    return result


def _merge_text(deltas: list[Any]) -> list[Any]:
    """Adjacent text deltas merged, so byte-wise and whole feeding describe the same stream.

    (A 1-byte chunking cannot split an SSE event, but keeps the golden readable either way.)
    """
    out: list[Any] = []
    for d in deltas:
        if d["tool_call"] is None and out and out[-1]["tool_call"] is None:
            out[-1] = {"text": out[-1]["text"] + d["text"], "tool_call": None}
        else:
            out.append(d)
    return out


def run_stream_case(adapter: Adapter, sse_path: Path) -> None:
    raw = sse_path.read_bytes()
    whole = run_stream(adapter, raw, len(raw) or 1)
    # Any chunking of the bytes must tell the same story.
    for size in (1, 3, 17, 64):
        assert run_stream(adapter, raw, size) == whole, f"{sse_path.name}: chunk size {size}"
    json_path = sse_path.with_suffix(".json")
    data = load(json_path) if json_path.exists() else {}
    if not json_path.exists() and not UPDATE:
        raise AssertionError(f"{json_path.name} missing (run with UPDATE_GOLDEN=1 and review)")
    check(json_path, data, "expected", whole)


def sse_data_objects(raw: str) -> list[tuple[str, Any]]:
    """(event name, parsed data) of every event in a transcript whose data is valid JSON."""
    decoder = SSEDecoder()
    out: list[tuple[str, Any]] = []
    for event in [*decoder.feed(raw.encode()), *decoder.close()]:
        try:
            out.append((event.event, json.loads(event.data)))
        except ValueError:
            continue
    return out
