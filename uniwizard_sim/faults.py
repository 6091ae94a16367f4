"""Fault rules: parsing, matching and counting down. Pure data, no I/O.

Control API body (``POST /_sim/faults``)::

    {"target": "claude",            # backend path prefix, or "*" for every target
     "fault": {"kind": "status", "status": 429, "retry_after": 7},
     "times": 3,                    # optional: how many matching requests; null = until cleared
     "paths": "completion"}         # optional: "completion" (default) | "models" | "all"

Rules form a queue: the first still-active rule whose target and path scope
match a request applies to it and its ``times`` counts down by one.

Fault kinds and their fields (unknown fields are rejected):

=================  ==========================================================
kind               fields
=================  ==========================================================
status             status (required, 100-599), retry_after (s), retry_after_ms,
                   message, code (e.g. ``context_length_exceeded``,
                   ``insufficient_quota``), after_chunks (streaming only: send
                   N content events, then an in-stream error event)
content_filter     message
delay              seconds (required)
hang               seconds (cap, default 600)
reset              —
slow_first_token   seconds (required)
slow_stream        seconds (required): pause between stream events
stall              after_chunks (default 1), seconds (default 600)
cut                after_chunks (default 1)
malformed_chunk    after_chunks (default 1)
no_done            —
empty              —
refusal_text       text
refusal_signal     reason (Gemini finishReason, default SAFETY), finish_reason
                   (OpenAI variant: ``content_filter``), text (refusal text)
truncated          —
text               text (required)
=================  ==========================================================
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Literal

PathScope = Literal["completion", "models", "all"]
PathKind = Literal["completion", "models"]
PATH_SCOPES: tuple[str, ...] = ("completion", "models", "all")
ANY_TARGET = "*"

# kind -> (allowed fields, required fields)
_SPEC: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "status": (
        frozenset({"status", "retry_after", "retry_after_ms", "message", "code", "after_chunks"}),
        frozenset({"status"}),
    ),
    "content_filter": (frozenset({"message"}), frozenset()),
    "delay": (frozenset({"seconds"}), frozenset({"seconds"})),
    "hang": (frozenset({"seconds"}), frozenset()),
    "reset": (frozenset(), frozenset()),
    "slow_first_token": (frozenset({"seconds"}), frozenset({"seconds"})),
    "slow_stream": (frozenset({"seconds"}), frozenset({"seconds"})),
    "stall": (frozenset({"after_chunks", "seconds"}), frozenset()),
    "cut": (frozenset({"after_chunks"}), frozenset()),
    "malformed_chunk": (frozenset({"after_chunks"}), frozenset()),
    "no_done": (frozenset(), frozenset()),
    "empty": (frozenset(), frozenset()),
    "refusal_text": (frozenset({"text"}), frozenset()),
    "refusal_signal": (frozenset({"reason", "finish_reason", "text"}), frozenset()),
    "truncated": (frozenset(), frozenset()),
    "text": (frozenset({"text"}), frozenset({"text"})),
}
KINDS: frozenset[str] = frozenset(_SPEC)
STREAM_POSITION_KINDS = frozenset({"stall", "cut", "malformed_chunk"})
HANG_CAP_SECONDS = 600.0


class FaultError(ValueError):
    """A fault rule that does not parse; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    status: int | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    message: str | None = None
    code: str | None = None
    seconds: float | None = None
    after_chunks: int | None = None
    text: str | None = None
    reason: str | None = None
    finish_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _number(kind: str, name: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"fault {kind!r}: {name!r} must be a number, got {value!r}")
    if value < minimum:
        raise FaultError(f"fault {kind!r}: {name!r} must be >= {minimum}, got {value!r}")
    return float(value)


def _int(kind: str, name: str, value: Any, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"fault {kind!r}: {name!r} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise FaultError(f"fault {kind!r}: {name!r} out of range: {value!r}")
    return value


def _str(kind: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FaultError(f"fault {kind!r}: {name!r} must be a string, got {value!r}")
    return value


def parse_fault(raw: Any) -> Fault:
    """Parse and validate one fault object (``{"kind": ..., ...}``)."""
    if not isinstance(raw, dict):
        raise FaultError(f"fault must be a JSON object, got {raw!r}")
    kind = raw.get("kind")
    if kind not in _SPEC:
        raise FaultError(f"unknown fault kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    allowed, required = _SPEC[kind]
    fields = {k: v for k, v in raw.items() if k != "kind"}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise FaultError(f"fault {kind!r}: unknown field(s) {', '.join(unknown)}")
    missing = sorted(required - {k for k, v in fields.items() if v is not None})
    if missing:
        raise FaultError(f"fault {kind!r}: missing field(s) {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "status":
            out[name] = _int(kind, name, value, minimum=100, maximum=599)
        elif name in ("seconds", "retry_after"):
            out[name] = _number(kind, name, value)
        elif name in ("retry_after_ms", "after_chunks"):
            out[name] = _int(kind, name, value)
        else:
            out[name] = _str(kind, name, value)
    if kind in STREAM_POSITION_KINDS:
        out.setdefault("after_chunks", 1)
    if kind == "stall":
        out.setdefault("seconds", HANG_CAP_SECONDS)
    if kind == "hang":
        out.setdefault("seconds", HANG_CAP_SECONDS)
    return Fault(kind=kind, **out)


@dataclass(slots=True)
class FaultRule:
    id: str
    target: str
    fault: Fault
    remaining: int | None
    paths: PathScope = "completion"

    def matches(self, target: str, path_kind: PathKind) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.target != ANY_TARGET and self.target != target:
            return False
        return self.paths == "all" or self.paths == path_kind

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "fault": self.fault.to_json(),
            "times": self.remaining,
            "paths": self.paths,
        }


def parse_rule_body(raw: Any) -> tuple[str, Fault, int | None, PathScope]:
    """Validate a ``POST /_sim/faults`` body → (target, fault, times, paths)."""
    if not isinstance(raw, dict):
        raise FaultError("body must be a JSON object")
    unknown = sorted(set(raw) - {"target", "fault", "times", "paths"})
    if unknown:
        raise FaultError(f"unknown field(s) {', '.join(unknown)}")
    target = raw.get("target")
    if not isinstance(target, str) or not target:
        raise FaultError("'target' must be a non-empty string")
    fault = parse_fault(raw.get("fault"))
    times = raw.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise FaultError(f"'times' must be a positive integer or null, got {times!r}")
    paths = raw.get("paths", "completion") or "completion"
    if paths == "completion":
        return target, fault, times, "completion"
    if paths == "models":
        return target, fault, times, "models"
    if paths == "all":
        return target, fault, times, "all"
    raise FaultError(f"'paths' must be one of {', '.join(PATH_SCOPES)}, got {paths!r}")


class FaultQueue:
    """Ordered fault rules; :meth:`take` applies the first active match."""

    __slots__ = ("_ids", "_rules")

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(
        self,
        target: str,
        fault: Fault,
        times: int | None = None,
        paths: PathScope = "completion",
    ) -> FaultRule:
        if times is not None and times < 1:
            raise FaultError("'times' must be >= 1")
        rule = FaultRule(f"f{next(self._ids)}", target, fault, times, paths)
        self._rules.append(rule)
        return rule

    def add_json(self, raw: Any) -> FaultRule:
        target, fault, times, paths = parse_rule_body(raw)
        return self.add(target, fault, times, paths)

    def take(self, target: str, path_kind: PathKind) -> Fault | None:
        """The fault for one request (counting it down), or None."""
        if not self._rules:
            return None
        for rule in self._rules:
            if rule.matches(target, path_kind):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.fault
        return None

    def clear(self, target: str | None = None) -> int:
        """Remove all rules, or those of one target; returns how many were removed."""
        before = len(self._rules)
        if target is None:
            self._rules.clear()
        else:
            self._rules = [r for r in self._rules if r.target != target]
        return before - len(self._rules)

    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def __len__(self) -> int:
        return len(self._rules)
