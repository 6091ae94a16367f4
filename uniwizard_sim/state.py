"""Mutable simulator state: the request record, the fault queue, model overrides."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from uniwizard_sim.faults import FaultQueue

REDACTED = "***"
SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie"}
)
SECRET_QUERY = frozenset({"key", "api_key"})
DEFAULT_MAX_RECORDS = 10_000


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased header dict with credentials replaced by ``***``."""
    out: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        out[low] = REDACTED if low in SECRET_HEADERS else value
    return out


def redact_query(query: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k in SECRET_QUERY else v) for k, v in query.items()}


class RequestLog:
    """Bounded record of received requests (oldest dropped first).

    Each record is a dict: ``seq, time, target, provider, method, path, query,
    headers, body, fault, status``. ``status`` is 0 until a status line is sent
    (it stays 0 for ``reset`` and ``hang``)."""

    __slots__ = ("_records", "_seq")

    def __init__(self, maxlen: int = DEFAULT_MAX_RECORDS) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = itertools.count(1)

    def add(
        self,
        *,
        target: str,
        provider: str | None,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Iterable[tuple[str, str]],
        body: Any,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "seq": next(self._seq),
            "time": time.time(),
            "target": target,
            "provider": provider,
            "method": method,
            "path": path,
            "query": redact_query(query) if query else {},
            "headers": redact_headers(headers),
            "body": body,
            "fault": None,
            "status": 0,
        }
        self._records.append(record)
        return record

    def list(self, target: str | None = None) -> list[dict[str, Any]]:
        if target is None:
            return list(self._records)
        return [r for r in self._records if r["target"] == target]

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)


class SimState:
    """Everything the simulator remembers between requests."""

    __slots__ = ("faults", "models", "requests")

    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        self.faults = FaultQueue()
        self.requests = RequestLog(max_records)
        self.models: dict[str, list[str]] = {}
        """Per-target model listing overrides (``PUT /_sim/models``)."""
