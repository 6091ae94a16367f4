"""What every ``uniwizard`` command module shares: exit codes, the typed usage error, and how a
command opens a client and calls it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from uniwizard.balancing import BalancingError
from uniwizard.security import SecurityError
from uniwizard_client import RouterUnavailable

EXIT_FAILED = 1  # the request failed (a typed error)
EXIT_USAGE = 2  # bad arguments or input
EXIT_UNREACHABLE = 3  # a service could not be reached


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)
T = TypeVar("T")
UNREACHABLE_HINT = "is the stack running? (start it with: uniwizard up --sim)"


@contextmanager
def _client(make: Callable[[str | None], C], target: str | None = None) -> Iterator[C]:
    """A ``uniwizard_client`` client for one command, to ``target`` (default: the service's
    ``UNIWIZARD_<NAME>_ADDR``); settings errors are usage errors."""
    try:
        client = make(target)
    except (SecurityError, BalancingError) as exc:
        raise CliError(str(exc)) from None
    try:
        yield client
    finally:
        client.close()


def _unreachable(err: RouterUnavailable) -> CliError:
    return CliError(
        f"cannot reach {err.service}_svc at {err.target}: {UNREACHABLE_HINT}", EXIT_UNREACHABLE
    )


def _rpc(fn: Callable[[], T]) -> T:
    """``fn()``; a service that cannot be connected to is exit 3 with a hint."""
    try:
        return fn()
    except RouterUnavailable as err:
        if err.connect_failed:
            raise _unreachable(err) from None
        raise


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))
