"""Blocking client calls run off the Twisted reactor thread.

``run_async`` (Evennia's wrapper around ``deferToThread``) runs the call in the reactor's thread
pool and fires the callbacks back on the reactor thread, where touching Evennia objects is safe.
Tests replace ``run_async`` here (no reactor runs under pytest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from evennia.utils import logger
from evennia.utils.utils import run_async

T = TypeVar("T")


def off_reactor(work: Callable[[], T], *, on_result: Callable[[T], Any],
                on_error: Callable[[BaseException], Any]) -> None:
    """Run ``work`` in a worker thread; deliver its result or exception on the reactor thread.

    ``work`` must not touch the database or Evennia objects: capture what it needs first.
    """

    def errback(failure: Any) -> None:
        try:
            on_error(failure.value)
        except Exception:
            logger.log_trace("uniwizard: error callback failed")

    def callback(result: T) -> None:
        try:
            on_result(result)
        except Exception:
            logger.log_trace("uniwizard: result callback failed")

    run_async(work, at_return=callback, at_err=errback)
