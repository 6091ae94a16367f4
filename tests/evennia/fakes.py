"""A stand-in for Evennia's ``run_async`` (no Twisted reactor runs under pytest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from twisted.python.failure import Failure


class ThreadedRunAsync:
    """The work runs in a real worker thread, like ``deferToThread``; its callbacks are delivered
    on the calling (test) thread, like the reactor would, when :meth:`drain` is called — or right
    away with ``immediate=True``."""

    def __init__(self, *, immediate: bool = False):
        self.immediate = immediate
        self.pending: list[tuple[Future[Any], Callable[..., Any] | None,
                                 Callable[..., Any] | None]] = []
        self.worker_threads: set[int] = set()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fake-reactor-pool")

    def __call__(self, to_execute: Callable[..., Any], *args: Any,
                 at_return: Callable[..., Any] | None = None,
                 at_err: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        def work() -> Any:
            self.worker_threads.add(threading.get_ident())
            return to_execute(*args, **kwargs)

        self.pending.append((self._pool.submit(work), at_return, at_err))
        if self.immediate:
            self.drain()

    def drain(self, timeout: float = 30.0) -> int:
        """Deliver every pending result; returns how many were delivered."""
        delivered = 0
        while self.pending:
            future, at_return, at_err = self.pending.pop(0)
            try:
                value = future.result(timeout)
            except Exception as exc:
                if at_err is not None:
                    at_err(Failure(exc))
            else:
                if at_return is not None:
                    at_return(value)
            delivered += 1
        return delivered

    def close(self) -> None:
        self._pool.shutdown(wait=True)
