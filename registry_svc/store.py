"""Operator enable/disable decisions, persisted across registry restarts.

The file is small JSON::

    {"version": 1,
     "backends": {"claude": {"disabled": true, "by": "alice", "reason": "billing", "at": 1.7e9}}}

Writes are atomic: a temporary file in the same directory, fsync, ``os.replace``, then a
best-effort fsync of the directory. A file that cannot be parsed is never silently dropped nor
silently overwritten: it is renamed aside to ``<path>.corrupt-<UTC timestamp>``, a warning naming
both paths is logged, :attr:`OperatorStore.recovered_from` records the message, and the store
starts empty. An unreadable file (permissions, I/O error) raises :class:`OperatorStoreError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class OperatorState:
    """The latest operator decision about one backend.

    ``disabled=False`` records an explicit enable, which matters only when the configuration says
    ``enabled: false`` (the operator's enable overrides it).
    """

    disabled: bool
    by: str
    reason: str
    at: float  # epoch seconds


class OperatorStoreError(Exception):
    """The store file cannot be read or written; the message names the path."""


class OperatorStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.recovered_from: str | None = None  # set when a corrupt file was moved aside

    def load(self) -> dict[str, OperatorState]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError as exc:
            return self._set_aside(f"not UTF-8 text: {exc}")
        except OSError as exc:
            raise OperatorStoreError(f"cannot read operator state {self.path}: {exc}") from exc
        try:
            return _parse(text)
        except ValueError as exc:
            return self._set_aside(str(exc))

    def save(self, states: Mapping[str, OperatorState]) -> None:
        payload = {
            "version": FORMAT_VERSION,
            "backends": {
                key: {"disabled": s.disabled, "by": s.by, "reason": s.reason, "at": s.at}
                for key, s in sorted(states.items())
            },
        }
        data = json.dumps(payload, indent=2, sort_keys=True) + "\n"
        write_atomic(self.path, data, "operator state")

    def _set_aside(self, problem: str) -> dict[str, OperatorState]:
        self.recovered_from = set_aside(
            self.path, problem, "operator state", "started with no operator overrides"
        )
        return {}


class LearningStore:
    """What the registry has learned (``LearningBook.dump()``), as JSON beside the operator
    state; written atomically, a corrupt file set aside like the operator state's."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            set_aside(self.path, str(exc), "learned statistics", "starting to learn afresh")
            return None
        except OSError as exc:
            raise OperatorStoreError(f"cannot read learned statistics {self.path}: {exc}") from exc
        return doc if isinstance(doc, dict) else None

    def save(self, data: Mapping[str, Any]) -> None:
        write_atomic(self.path, json.dumps(data, separators=(",", ":")), "learned statistics")


def write_atomic(path: Path, data: str, what: str) -> None:
    """A temporary file in the same directory, fsync, ``os.replace``, fsync the directory."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OperatorStoreError(f"cannot write {what} {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OperatorStoreError(f"cannot write {what} {path}: {exc}") from exc
    _fsync_dir(directory)


def set_aside(path: Path, problem: str, what: str, then: str) -> str:
    """Move a corrupt file to ``<path>.corrupt-<UTC timestamp>``; returns the logged message."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        os.replace(path, aside)
    except OSError as exc:
        raise OperatorStoreError(
            f"{what} {path} is corrupt ({problem}) and could not be moved aside: {exc}"
        ) from exc
    message = f"{what} {path} is corrupt ({problem}); moved it to {aside} and {then}"
    log.warning("%s", message)
    return message


def _parse(text: str) -> dict[str, OperatorState]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("top level is not an object")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported version {doc.get('version')!r}")
    backends = doc.get("backends")
    if not isinstance(backends, dict):
        raise ValueError("'backends' is not an object")
    return {str(key): _entry(str(key), value) for key, value in backends.items()}


def _entry(key: str, value: Any) -> OperatorState:
    if not isinstance(value, dict):
        raise ValueError(f"backends.{key} is not an object")
    disabled, by, reason, at = (value.get(f) for f in ("disabled", "by", "reason", "at"))
    if not isinstance(disabled, bool):
        raise ValueError(f"backends.{key}.disabled is not a boolean")
    if not isinstance(by, str) or not isinstance(reason, str):
        raise ValueError(f"backends.{key}.by/reason must be strings")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError(f"backends.{key}.at is not a number")
    return OperatorState(disabled=disabled, by=by, reason=reason, at=float(at))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
