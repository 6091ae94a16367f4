"""The operations a ledger's writer applies, and what each one's waiter hears.

Both backends queue these and apply the writes in group transactions (``caller_svc/ledger.py``
states the guarantees); the rules for settling waiters after a commit, after a failed
transaction, for a row the database rejects, and at close are the same for both and live here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from caller_svc.ledger_schema import IN_FLIGHT, LedgerRow

log = logging.getLogger("caller_svc.ledger")


class LedgerUnavailable(Exception):
    """The ledger could not commit (or read) for this operation; nothing was written for it.

    Raised by ``begin`` (the attempt must then not be sent), ``interrupted``, ``totals``,
    ``rows``, ``rate`` and ``spend``; never by ``finish``/``record``, whose rows are kept and
    retried instead."""


class Waiter:
    """An asyncio future on the caller's loop, settled from the writer (any thread)."""

    __slots__ = ("future", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] = self.loop.create_future()

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the waiter was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(eq=False, slots=True)
class Begin:
    row: LedgerRow
    waiter: Waiter
    row_id: int = 0  # set once inserted; reset if the transaction rolls back
    error: BaseException | None = None


@dataclass(eq=False, slots=True)
class Finish:
    row_id: int
    row: LedgerRow
    waiter: Waiter


@dataclass(eq=False, slots=True)
class Record:
    row: LedgerRow
    waiter: Waiter


@dataclass(eq=False, slots=True)
class Cancel:
    """The task waiting in ``begin`` was cancelled: its request is never sent."""

    begin: Begin


@dataclass(eq=False, slots=True)
class Interrupted:
    waiter: Waiter
    count: int = 0


@dataclass(eq=False, slots=True)
class Flush:
    waiter: Waiter


@dataclass(eq=False, slots=True)
class Read:
    """A read in queue order: it sees every write queued before it that could be committed.
    ``fn`` runs on the writer (SQLite); without one the read is only a barrier (PostgreSQL)."""

    waiter: Waiter
    fn: Callable[[Any], Any] | None = None


@dataclass(eq=False, slots=True)
class Close:
    waiter: Waiter


Op = Begin | Finish | Record | Cancel | Interrupted | Flush | Read | Close
DURABLE = (Finish, Record, Cancel)  # kept and retried when their transaction fails
KEPT = (Finish, Record, Cancel, Flush, Close)  # ... and the barriers that wait for them
WAKE = object()  # wakes the writer (to give up) without an operation


def describe(op: Op) -> str:
    if isinstance(op, Finish):
        return f"finish of row {op.row_id}: {op.row}"
    if isinstance(op, Record):
        return f"row {op.row}"
    if isinstance(op, Cancel):
        return f"cancellation of row {op.begin.row_id} ({op.begin.row})"
    return type(op).__name__


def settle_committed(group: list[Op]) -> None:
    """The transaction holding ``group`` committed: tell every waiter."""
    for op in group:
        if isinstance(op, Begin):
            if op.error is not None:
                op.waiter.settle(error=op.error)
            else:
                op.waiter.settle(op.row_id)
        elif isinstance(op, Interrupted):
            op.waiter.settle(op.count)
        elif isinstance(op, Finish | Record):
            op.waiter.settle(True)  # no effect if it was settled False on an earlier try
        elif isinstance(op, Flush):
            op.waiter.settle()


def settle_failed(group: list[Op], error: LedgerUnavailable, kept: list[Op]) -> None:
    """The transaction holding ``group`` rolled back: begins fail; durable writes (and the
    barriers waiting for them) go to ``kept`` for the next try."""
    for op in group:
        if isinstance(op, Begin):
            op.row_id = 0
            op.waiter.settle(error=error)
        elif isinstance(op, Interrupted):
            op.waiter.settle(error=error)
        else:
            if isinstance(op, Finish | Record):
                op.waiter.settle(False)  # not yet: kept and retried
            kept.append(op)


def reject(op: Op, exc: Exception) -> None:
    """The database refused this one row; no retry can change that."""
    if isinstance(op, Begin):
        op.row_id = 0
        op.error = LedgerUnavailable(f"the ledger rejected the row: {exc}")
    elif isinstance(op, Interrupted):
        raise exc
    else:
        log.error("the ledger rejected a write (%s); not written: %s", exc, describe(op))
        if isinstance(op, Finish | Record):
            op.waiter.settle(False)


def abandon(rest: list[Op], error: LedgerUnavailable) -> None:
    """The ledger is closed: rows still queued are logged at ERROR (never dropped silently),
    every other waiter gets ``error``."""
    for op in rest:
        if isinstance(op, DURABLE):
            log.error("ledger closed; not written: %s", describe(op))
            if isinstance(op, Finish | Record):
                op.waiter.settle(False)
        else:
            op.waiter.settle(error=error)


def split_kept(batch: list[Op], error: LedgerUnavailable) -> list[Op]:
    """After an unexpected error in the writer: keep what must not be lost, fail the rest."""
    kept: list[Op] = []
    for op in batch:
        if isinstance(op, KEPT):
            kept.append(op)
        else:  # no effect on a waiter that was settled already
            op.waiter.settle(error=error)
    return kept


class QueuedWrites:
    """The write half of the ledger API, the same on every backend: each operation is queued
    to the backend's one writer (``_put``; False once it stopped, with ``_stop_error`` saying
    why) and settled through its waiter."""

    _stop_error: LedgerUnavailable

    def _put(self, op: object) -> bool:
        raise NotImplementedError

    async def begin(self, row: LedgerRow) -> int:
        op = Begin(replace(row, outcome=IN_FLIGHT, sent=True, ts=row.ts or time.time()), Waiter())
        if not self._put(op):
            raise self._stop_error
        try:
            return int(await op.waiter.future)
        except asyncio.CancelledError:
            # The request will not be sent: whatever this op wrote must not stay in flight.
            self._put(Cancel(op))
            raise

    def finish(self, row_id: int, row: LedgerRow) -> asyncio.Future[bool]:
        return self._queue_durable(Finish(row_id, row, Waiter()))

    def record(self, row: LedgerRow) -> asyncio.Future[bool]:
        # Stamped now, not when written (a kept row may be written much later).
        return self._queue_durable(Record(replace(row, ts=row.ts or time.time()), Waiter()))

    def _queue_durable(self, op: Finish | Record) -> asyncio.Future[bool]:
        if not self._put(op):
            log.error("ledger closed; not written: %s", describe(op))
            op.waiter.future.set_result(False)
        return op.waiter.future

    async def flush(self) -> None:
        op = Flush(Waiter())
        if not self._put(op):
            raise self._stop_error
        await op.waiter.future


class RatingRefused(Exception):
    """A rating that cannot be stored; the message says why in plain words."""


class UnknownRequest(RatingRefused):
    """No answered attempt has this request (or trace) id."""


class AlreadyRated(RatingRefused):
    """The request was rated before; ratings are final."""


class FailureLog:
    """Says when writes start failing (then at most every ``every_s``) and when they recover."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.since = 0.0
        self.last = 0.0

    def failed(self, exc: Exception, kept: list[Op]) -> None:
        now = time.monotonic()
        if not self.since:
            self.since = now
        elif now - self.last < self.every_s:
            return
        self.last = now
        log.warning(
            "ledger write failed (%s); new attempts are refused, %d queued rows kept for retry",
            exc,
            sum(isinstance(op, DURABLE) for op in kept),
        )

    def committed(self) -> None:
        if self.since:
            log.warning("ledger writable again after %.1f s", time.monotonic() - self.since)
            self.since = 0.0
