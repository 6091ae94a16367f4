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
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise OperatorStoreError(f"cannot write operator state {self.path}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise OperatorStoreError(f"cannot write operator state {self.path}: {exc}") from exc
        _fsync_dir(directory)

    def _set_aside(self, problem: str) -> dict[str, OperatorState]:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise OperatorStoreError(
                f"operator state {self.path} is corrupt ({problem}) and could not be moved "
                f"aside: {exc}"
            ) from exc
        message = (
            f"operator state {self.path} is corrupt ({problem}); moved it to {aside} "
            f"and started with no operator overrides"
        )
        log.warning("%s", message)
        self.recovered_from = message
        return {}


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
