"""The cost ledger: one row per provider attempt, written off the event loop.

Guarantees
----------
* A row is **committed before a request leaves for a provider**: ``await ledger.begin(row)``
  returns the row id only once the transaction holding the ``in_flight`` row has committed. So a
  caller killed mid-request still leaves exactly one row per attempt the provider saw; on the next
  start :meth:`Ledger.interrupted` turns such rows into ``interrupted``.
* Completing a row (:meth:`Ledger.finish`) and recording an attempt that was stopped before
  anything was sent (:meth:`Ledger.record`, ``sent = 0``) are *queued*, applied in the order they
  were queued, and never dropped silently. ``await ledger.flush()`` waits until everything queued
  so far is committed; ``await ledger.aclose()`` flushes and then closes.
  Each returns a future that may be ignored or awaited: ``True`` once its transaction committed,
  ``False`` as soon as a first try failed (the row is kept and retried) or the ledger is closed
  (the row is logged); it never raises. The caller awaits it before handing an answer back, so
  an answered attempt's row is complete on disk even if the process is killed right after, and a
  ledger that cannot write just now does not hold the answer. Rows not awaited (cancellations)
  are committed with the next transaction; if the process is killed before, a completion is lost
  and its row stays ``in_flight`` (→ ``interrupted``: counted, without its cost).
* WAL with ``synchronous=NORMAL`` makes each committed transaction survive a crash of the process;
  only a power loss can take the last transactions. No prompt or answer text is stored.

Threading model (:class:`SQLiteLedger`)
---------------------------------------
One dedicated writer thread owns the only SQLite connection; nothing touches SQLite on the event
loop. Operations go to the thread through a FIFO queue. The thread takes everything queued (up to
``MAX_BATCH``) and applies the writes in one transaction (group commit: under concurrency many
begins/finishes share one commit). The futures of ``begin``, ``finish``/``record``, ``flush`` and
``interrupted`` (a write too) are resolved only after that transaction has committed. Reads
(``totals``, ``rows``) run on the same thread, in queue order, outside the write transaction: so
they see every write queued before them (read-your-writes for the process's own queued finishes;
a write that failed and is kept for retry is not visible yet), at the price of waiting behind a
write that is stuck on SQLite's lock.

Errors
------
* ``begin`` raises :class:`LedgerUnavailable` when its row could not be committed (database locked
  beyond the busy timeout, disk full, read-only or failing file, ledger closed). Nothing was
  written for it, and the attempt must not be sent (caller_svc.core answers with a ``no_backend``
  attempt, nothing sent, so the router stops rather than trying every backend against the same
  ledger).
  The writer thread keeps running and later writes work once the cause is gone.
* A queued ``finish``/``record`` whose transaction fails is kept, logged, and retried (with a
  short backoff, and with every later transaction); ``flush`` waits for it. A row SQLite rejects
  by itself (a constraint), which no retry can fix, is logged at ERROR with its values.
  ``aclose(timeout)`` gives up on rows still unwritable after ``timeout`` and logs each one at
  ERROR, so even then no row disappears silently.
* A task cancelled while waiting in ``begin`` never sends its request: its row is written as
  ``cancelled`` with ``sent = 0`` (or not at all if the write itself failed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    trace_id TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 1,
    outcome TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL,
    cost_source TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    http_status INTEGER NOT NULL DEFAULT 0,
    identity_redactions INTEGER NOT NULL DEFAULT 0,
    sent INTEGER NOT NULL DEFAULT 1,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    client TEXT NOT NULL DEFAULT ''     -- the name of the token that asked (never the token)
);
CREATE INDEX IF NOT EXISTS attempts_ts ON attempts(ts);
CREATE INDEX IF NOT EXISTS attempts_request ON attempts(request_id);
CREATE INDEX IF NOT EXISTS attempts_trace ON attempts(trace_id);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    request_id TEXT NOT NULL UNIQUE,
    trace_id TEXT NOT NULL DEFAULT '',
    attempt_id INTEGER NOT NULL,        -- the attempts row that answered
    backend TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '',
    score REAL NOT NULL,                -- [0, 1]
    label TEXT NOT NULL DEFAULT ''
);
"""


# Columns added after the first release, with their definitions, for _migrate. Token columns:
# input_tokens and output_tokens are all input and all output (uniwizard.types.Usage);
# cached_input_tokens and cache_write_tokens are parts of input_tokens, reasoning_tokens of
# output_tokens.
ADDED_COLUMNS = {
    "sent": "INTEGER NOT NULL DEFAULT 1",
    "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0",
    "reasoning_tokens": "INTEGER NOT NULL DEFAULT 0",
    "client": "TEXT NOT NULL DEFAULT ''",
}

IN_FLIGHT = "in_flight"
INTERRUPTED = "interrupted"
CANCELLED = "cancelled"
_FIELDS = (
    "ts",
    "trace_id",
    "request_id",
    "backend",
    "model",
    "category",
    "attempt",
    "outcome",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_usd",
    "cost_source",
    "latency_ms",
    "http_status",
    "identity_redactions",
    "sent",
    "cache_write_tokens",
    "reasoning_tokens",
    "client",
)
_COLUMNS = ", ".join(_FIELDS)
_INSERT = f"INSERT INTO attempts ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})"
_UPDATE = f"UPDATE attempts SET {', '.join(f'{f} = ?' for f in _FIELDS[1:])} WHERE id = ?"

DEFAULT_BUSY_TIMEOUT_S = 5.0
MAX_BATCH = 512  # operations per transaction
RETRY_BACKOFF_S = (0.05, 2.0)  # first and longest wait before retrying kept writes
WARN_EVERY_S = 10.0  # while writes keep failing, how often to say so

# Errors that belong to one row (no retry can fix them); every other error aborts the transaction
# and is treated as the database being unavailable (locked, full, read-only, failing disk).
_ROW_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    ValueError,
    TypeError,
    OverflowError,
)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    backend: str
    model: str
    outcome: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_source: str
    latency_ms: float
    trace_id: str = ""
    request_id: str = ""
    category: str = ""
    attempt: int = 1
    cached_input_tokens: int = 0
    http_status: int = 0
    identity_redactions: int = 0
    ts: float = 0.0
    sent: bool = True
    cache_write_tokens: int = 0  # of input_tokens
    reasoning_tokens: int = 0  # of output_tokens
    client: str = ""  # the name of the token the attempt was made for ("": no tokens)


@dataclass(frozen=True, slots=True)
class Totals:
    """Totals of a group of rows: one backend's, one client's (``backend`` is then empty and
    ``client`` names it), or all of them (``backend`` is "total")."""

    backend: str
    attempts: int
    successes: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated_rows: int
    cached_input_tokens: int = 0  # of input_tokens
    cache_write_tokens: int = 0  # of input_tokens
    reasoning_tokens: int = 0  # of output_tokens
    client: str = ""


@dataclass(frozen=True, slots=True)
class Rated:
    """A stored rating and the attempt it belongs to."""

    request_id: str
    trace_id: str
    attempt_id: int
    backend: str
    category: str
    score: float
    label: str
    ts: float


class RatingRefused(Exception):
    """A rating that cannot be stored; the message says why in plain words."""


class UnknownRequest(RatingRefused):
    """No answered attempt has this request (or trace) id."""


class AlreadyRated(RatingRefused):
    """The request was rated before; ratings are final."""


class LedgerUnavailable(Exception):
    """The ledger could not commit (or read) for this operation; nothing was written for it.

    Raised by ``begin`` (the attempt must then not be sent), ``interrupted``, ``totals`` and
    ``rows``; never by ``finish``/``record``, whose rows are kept and retried instead."""


class Ledger(Protocol):
    """The async ledger API that the caller uses; :class:`SQLiteLedger` is one implementation."""

    async def begin(self, row: LedgerRow) -> int:
        """Commit the ``in_flight`` row of an attempt about to be sent; returns its id.
        Raises :class:`LedgerUnavailable` if it cannot be committed."""
        ...

    def finish(self, row_id: int, row: LedgerRow) -> Awaitable[bool]:
        """Queue the completion of a row from ``begin`` (its start time is kept). Awaiting the
        result is optional: True once committed, False if the first try failed (the row is
        kept and retried) or the ledger is closed (the row is logged). It never raises."""
        ...

    def record(self, row: LedgerRow) -> Awaitable[bool]:
        """Queue a complete row (e.g. an attempt stopped before anything was sent); the
        result is as for ``finish``."""
        ...

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        ...

    async def aclose(self) -> None:
        """Flush, then release the ledger; later operations fail."""
        ...

    async def interrupted(self) -> int:
        """Mark rows left in flight by a previous process as interrupted; returns how many."""
        ...

    async def totals(
        self,
        since: float = 0.0,
        until: float = 0.0,
        *,
        by: str = "backend",
        client: str | None = None,
    ) -> tuple[list[Totals], Totals]:
        """Totals of rows with ``since <= ts < until`` (0: now) per ``by`` (``backend`` or
        ``client``) and overall; ``client``: only that client's rows."""
        ...

    async def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The first ``limit`` rows in id order, as column → value (for tests and tools)."""
        ...

    async def rate(
        self, request_id: str, trace_id: str, score: float, label: str, client: str | None = None
    ) -> Rated:
        """Store a rating beside the attempt that answered ``request_id`` (or, when that is
        empty, ``trace_id``), made for ``client`` when given. Raises :class:`UnknownRequest`
        or :class:`AlreadyRated`."""
        ...

    async def spend(self, day_start: float, month_start: float) -> dict[str, tuple[float, float]]:
        """USD per backend since ``day_start`` and since ``month_start``."""
        ...


async def open_ledger(target: str) -> Ledger:
    """Open the ledger at ``target``: a SQLite file path, or ``:memory:``.

    Waits until the database is open and migrated; raises :class:`LedgerUnavailable` if it cannot
    be, and ``ValueError`` for a URL scheme that has no backend yet."""
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise ValueError(f"unsupported ledger URL scheme {scheme!r} (give a SQLite file path)")
    ledger = SQLiteLedger(target)
    await ledger.ready()
    return ledger


# -- the operations the writer thread applies --------------------------------------------------


class _Waiter:
    """An asyncio future on the caller's loop, settled from the writer thread."""

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
class _Begin:
    row: LedgerRow
    waiter: _Waiter
    row_id: int = 0  # set once inserted; reset if the transaction rolls back
    error: BaseException | None = None


@dataclass(eq=False, slots=True)
class _Finish:
    row_id: int
    row: LedgerRow
    waiter: _Waiter


@dataclass(eq=False, slots=True)
class _Record:
    row: LedgerRow
    waiter: _Waiter


@dataclass(eq=False, slots=True)
class _Cancel:
    """The task waiting in ``begin`` was cancelled: its request is never sent."""

    begin: _Begin


@dataclass(eq=False, slots=True)
class _Interrupted:
    waiter: _Waiter
    count: int = 0


@dataclass(eq=False, slots=True)
class _Flush:
    waiter: _Waiter


@dataclass(eq=False, slots=True)
class _Read:
    fn: Callable[[sqlite3.Connection], Any]
    waiter: _Waiter


@dataclass(eq=False, slots=True)
class _Close:
    waiter: _Waiter


_Op = _Begin | _Finish | _Record | _Cancel | _Interrupted | _Flush | _Read | _Close
_DURABLE = (_Finish, _Record, _Cancel)  # kept and retried when their transaction fails
_KEPT = (_Finish, _Record, _Cancel, _Flush, _Close)  # ... and the barriers that wait for them
_WAKE = object()  # wakes the writer (to give up) without an operation


def _values(row: LedgerRow) -> tuple[object, ...]:
    return (
        row.ts or time.time(),
        row.trace_id,
        row.request_id,
        row.backend,
        row.model,
        row.category,
        row.attempt,
        row.outcome,
        row.input_tokens,
        row.output_tokens,
        row.cached_input_tokens,
        row.cost_usd,
        row.cost_source,
        row.latency_ms,
        row.http_status,
        row.identity_redactions,
        int(row.sent),
        row.cache_write_tokens,
        row.reasoning_tokens,
        row.client,
    )


def _describe(op: _Op) -> str:
    if isinstance(op, _Finish):
        return f"finish of row {op.row_id}: {op.row}"
    if isinstance(op, _Record):
        return f"row {op.row}"
    if isinstance(op, _Cancel):
        return f"cancellation of row {op.begin.row_id} ({op.begin.row})"
    return type(op).__name__


class SQLiteLedger:
    """The ledger in a SQLite file (WAL), written by one dedicated thread (see the module doc).

    The constructor returns at once; the thread opens the file first, so an operation queued
    before that just waits. :meth:`ready` (used by :func:`open_ledger`) reports an open failure.
    """

    def __init__(self, path: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S):
        self.path = path
        self.busy_timeout = busy_timeout
        self.transactions = 0  # write transactions committed (observability, tests)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _stopped against a racing put
        self._stopped = False
        self._stop_error: LedgerUnavailable = LedgerUnavailable("the ledger is closed")
        self._give_up = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._failing_since = 0.0
        self._last_warning = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"ledger-writer:{os.path.basename(path)}", daemon=True
        )
        self._thread.start()

    # -- the async API (event loop side) ---------------------------------------------------

    async def ready(self) -> None:
        """Wait until the database is open and migrated (raises LedgerUnavailable if not)."""
        await self._read(lambda db: None)

    async def begin(self, row: LedgerRow) -> int:
        op = _Begin(replace(row, outcome=IN_FLIGHT, sent=True, ts=row.ts or time.time()), _Waiter())
        if not self._put(op):
            raise self._stop_error
        try:
            return int(await op.waiter.future)
        except asyncio.CancelledError:
            # The request will not be sent: whatever this op wrote must not stay in flight.
            self._put(_Cancel(op))
            raise

    def finish(self, row_id: int, row: LedgerRow) -> asyncio.Future[bool]:
        return self._queue_durable(_Finish(row_id, row, _Waiter()))

    def record(self, row: LedgerRow) -> asyncio.Future[bool]:
        # Stamped now, not when written (a kept row may be written much later).
        return self._queue_durable(_Record(replace(row, ts=row.ts or time.time()), _Waiter()))

    def _queue_durable(self, op: _Finish | _Record) -> asyncio.Future[bool]:
        if not self._put(op):
            log.error("ledger closed; not written: %s", _describe(op))
            op.waiter.future.set_result(False)
        return op.waiter.future

    async def flush(self) -> None:
        op = _Flush(_Waiter())
        if not self._put(op):
            raise self._stop_error
        await op.waiter.future

    async def aclose(self, timeout: float = 10.0) -> None:
        """Flush and close. Rows that still cannot be written after ``timeout`` seconds are
        logged one by one at ERROR and abandoned, so that shutdown cannot hang."""
        op = _Close(_Waiter())
        if not self._put(op):
            return
        try:
            await asyncio.wait_for(asyncio.shield(op.waiter.future), timeout)
        except TimeoutError:
            self._give_up.set()
            self._queue.put(_WAKE)
            try:  # at most one more attempt that is stuck on the lock
                await asyncio.wait_for(op.waiter.future, self.busy_timeout + 1.0)
            except (TimeoutError, LedgerUnavailable):
                pass

    async def interrupted(self) -> int:
        op = _Interrupted(_Waiter())
        if not self._put(op):
            raise self._stop_error
        return int(await op.waiter.future)

    async def totals(
        self,
        since: float = 0.0,
        until: float = 0.0,
        *,
        by: str = "backend",
        client: str | None = None,
    ) -> tuple[list[Totals], Totals]:
        if by not in _GROUPS:
            raise ValueError(f"totals by {by!r}: one of {', '.join(_GROUPS)}")
        until = until or time.time() + 1
        return await self._read(  # type: ignore[no-any-return]
            lambda db: _totals(db, since, until, by, client)
        )

    async def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        return await self._read(lambda db: _rows(db, limit))  # type: ignore[no-any-return]

    async def rate(
        self, request_id: str, trace_id: str, score: float, label: str, client: str | None = None
    ) -> Rated:
        # A read with one autocommitted insert: ratings are rare and must answer at once.
        rated = await self._read(lambda db: _rate(db, request_id, trace_id, score, label, client))
        return rated  # type: ignore[no-any-return]

    async def spend(self, day_start: float, month_start: float) -> dict[str, tuple[float, float]]:
        return await self._read(  # type: ignore[no-any-return]
            lambda db: _spend(db, day_start, month_start)
        )

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        op = _Read(fn, _Waiter())
        if not self._put(op):
            raise self._stop_error
        return await op.waiter.future

    def _put(self, op: object) -> bool:
        with self._lock:
            if self._stopped:
                return False
            self._queue.put(op)
            return True

    # -- the writer thread -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)  # this thread only
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            _migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _run(self) -> None:
        try:
            self._db = self._connect()
        except Exception as exc:
            log.error("cannot open the cost ledger %s: %s", self.path, exc)
            self._stop(LedgerUnavailable(f"cannot open the ledger {self.path}: {exc}"), [])
            return
        kept: list[_Op] = []
        backoff = 0.0
        while True:
            try:
                first = self._queue.get(timeout=backoff) if kept else self._queue.get()
            except queue.Empty:
                first = _WAKE
            batch = kept
            if first is not _WAKE:
                batch.append(first)
            while len(batch) < MAX_BATCH:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is not _WAKE:
                    batch.append(op)
            if self._give_up.is_set():
                self._stop(LedgerUnavailable("the ledger was closed with writes pending"), batch)
                return
            try:
                kept, failed, closed = self._round(batch)
            except Exception as exc:  # a bug here must not end the thread or hang a waiter
                log.exception("ledger writer: unexpected error; keeping the batch's rows")
                error = LedgerUnavailable(f"ledger writer error: {exc}")
                kept, failed, closed = [], True, False
                for op in batch:
                    if isinstance(op, _KEPT):
                        kept.append(op)
                    else:  # no effect on a waiter that was settled already
                        op.waiter.settle(error=error)
            if closed:
                return
            if failed and kept:
                lo, hi = RETRY_BACKOFF_S
                backoff = min(hi, max(lo, backoff * 2))
            else:
                backoff = 0.0

    def _round(self, batch: list[_Op]) -> tuple[list[_Op], bool, bool]:
        """Apply one batch in order; returns (ops kept for the next round, failed, closed)."""
        kept: list[_Op] = []
        group: list[_Op] = []
        error: LedgerUnavailable | None = None
        for i, op in enumerate(batch):
            if error is not None:  # this round's transaction failed: don't wait on the lock again
                if isinstance(op, _KEPT):
                    kept.append(op)
                elif isinstance(op, _Read):
                    self._apply_read(op)
                else:
                    op.waiter.settle(error=error)
                continue
            if isinstance(op, _Read | _Close):
                error = self._commit(group, kept)
                group = []
                if error is not None:
                    if isinstance(op, _Close):
                        kept.append(op)
                    else:
                        self._apply_read(op)
                    continue
                if isinstance(op, _Read):
                    self._apply_read(op)
                    continue
                self._stop(self._stop_error, batch[i + 1 :])
                op.waiter.settle()
                return [], False, True
            group.append(op)
        if group and error is None:
            error = self._commit(group, kept)
        return kept, error is not None, False

    def _commit(self, group: list[_Op], kept: list[_Op]) -> LedgerUnavailable | None:
        """One transaction for the writes of ``group``; settles their waiters after COMMIT.
        On failure the durable writes (and barriers) go to ``kept``; begins fail."""
        assert self._db is not None
        db = self._db
        writes = [op for op in group if not isinstance(op, _Flush)]
        try:
            if writes:
                db.execute("BEGIN IMMEDIATE")
                for write in writes:
                    try:
                        self._apply(db, write)
                    except _ROW_ERRORS as exc:  # this row only; the transaction goes on
                        self._reject(write, exc)
                db.execute("COMMIT")
                self.transactions += 1
        except Exception as exc:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            error = LedgerUnavailable(f"ledger write failed: {exc}")
            for op in group:
                if isinstance(op, _Begin):
                    op.row_id = 0
                    op.waiter.settle(error=error)
                elif isinstance(op, _Interrupted):
                    op.waiter.settle(error=error)
                else:
                    if isinstance(op, _Finish | _Record):
                        op.waiter.settle(False)  # not yet: kept and retried
                    kept.append(op)
            self._warn(exc, kept)
            return error
        if self._failing_since:
            log.warning(
                "ledger writable again after %.1f s", time.monotonic() - self._failing_since
            )
            self._failing_since = 0.0
        for op in group:
            if isinstance(op, _Begin):
                if op.error is not None:
                    op.waiter.settle(error=op.error)
                else:
                    op.waiter.settle(op.row_id)
            elif isinstance(op, _Interrupted):
                op.waiter.settle(op.count)
            elif isinstance(op, _Finish | _Record):
                op.waiter.settle(True)  # no effect if it was settled False on an earlier try
            elif isinstance(op, _Flush):
                op.waiter.settle()
        return None

    def _apply(self, db: sqlite3.Connection, op: _Op) -> None:
        if isinstance(op, _Begin):
            op.error = None
            op.row_id = int(db.execute(_INSERT, _values(op.row)).lastrowid or 0)
        elif isinstance(op, _Finish):
            db.execute(_UPDATE, (*_values(op.row)[1:], op.row_id))  # keeps the start time
        elif isinstance(op, _Record):
            db.execute(_INSERT, _values(op.row))
        elif isinstance(op, _Cancel):
            if op.begin.row_id:
                db.execute(
                    "UPDATE attempts SET outcome = ?, sent = 0 WHERE id = ? AND outcome = ?",
                    (CANCELLED, op.begin.row_id, IN_FLIGHT),
                )
        elif isinstance(op, _Interrupted):
            op.count = db.execute(
                "UPDATE attempts SET outcome = ? WHERE outcome = ?", (INTERRUPTED, IN_FLIGHT)
            ).rowcount

    def _reject(self, op: _Op, exc: Exception) -> None:
        """SQLite refused this one row; no retry can change that."""
        if isinstance(op, _Begin):
            op.row_id = 0
            op.error = LedgerUnavailable(f"the ledger rejected the row: {exc}")
        elif isinstance(op, _Interrupted):
            raise exc
        else:
            log.error("the ledger rejected a write (%s); not written: %s", exc, _describe(op))
            if isinstance(op, _Finish | _Record):
                op.waiter.settle(False)

    def _apply_read(self, op: _Read) -> None:
        assert self._db is not None
        try:
            result = op.fn(self._db)
        except RatingRefused as exc:  # an answer about the request, not a ledger failure
            op.waiter.settle(error=exc)
        except Exception as exc:
            op.waiter.settle(error=LedgerUnavailable(f"ledger read failed: {exc}"))
        else:
            op.waiter.settle(result)

    def _warn(self, exc: Exception, kept: list[_Op]) -> None:
        now = time.monotonic()
        if not self._failing_since:
            self._failing_since = now
        elif now - self._last_warning < WARN_EVERY_S:
            return
        self._last_warning = now
        waiting = sum(isinstance(op, _DURABLE) for op in kept)
        log.warning(
            "ledger write failed (%s); new attempts are refused, %d queued rows kept for retry",
            exc,
            waiting,
        )

    def _stop(self, error: LedgerUnavailable, rest: list[_Op]) -> None:
        """End the thread: no more operations are accepted; whatever is left is failed (or, for
        rows, logged at ERROR: never dropped silently); the connection is closed."""
        with self._lock:
            self._stopped = True
            self._stop_error = error
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is not _WAKE:
                rest.append(op)
        for op in rest:
            if isinstance(op, _DURABLE):
                log.error("ledger closed; not written: %s", _describe(op))
                if isinstance(op, _Finish | _Record):
                    op.waiter.settle(False)
            else:
                op.waiter.settle(error=error)
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error as exc:
                log.warning("closing the ledger: %s", exc)
            self._db = None


def _migrate(db: sqlite3.Connection) -> None:
    """Add columns that a ledger made by an older version lacks (rows are kept)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    for column, ddl in ADDED_COLUMNS.items():
        if column not in have:
            db.execute(f"ALTER TABLE attempts ADD COLUMN {column} {ddl}")


_GROUPS = ("backend", "client")


def _totals(
    db: sqlite3.Connection, since: float, until: float, by: str, client: str | None
) -> tuple[list[Totals], Totals]:
    where = "ts >= ? AND ts < ?"
    args: list[object] = [since, until]
    if client is not None:
        where += " AND client = ?"
        args.append(client)
    column = {"backend": "backend", "client": "client"}[by]  # never text from a request
    rows = db.execute(
        f"SELECT {column}, COUNT(*), SUM(outcome = 'success'), SUM(input_tokens),"
        " SUM(output_tokens), SUM(cost_usd), SUM(cost_source = 'estimated'),"
        " SUM(cached_input_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens)"
        f" FROM attempts WHERE {where} GROUP BY {column} ORDER BY {column}",
        args,
    ).fetchall()
    per = [
        Totals(
            backend=r[0] if by == "backend" else "",
            client=r[0] if by == "client" else "",
            attempts=r[1],
            successes=r[2] or 0,
            input_tokens=r[3] or 0,
            output_tokens=r[4] or 0,
            cost_usd=r[5] or 0.0,
            estimated_rows=r[6] or 0,
            cached_input_tokens=r[7] or 0,
            cache_write_tokens=r[8] or 0,
            reasoning_tokens=r[9] or 0,
        )
        for r in rows
    ]
    total = Totals(
        "total",
        sum(t.attempts for t in per),
        sum(t.successes for t in per),
        sum(t.input_tokens for t in per),
        sum(t.output_tokens for t in per),
        sum(t.cost_usd for t in per),
        sum(t.estimated_rows for t in per),
        sum(t.cached_input_tokens for t in per),
        sum(t.cache_write_tokens for t in per),
        sum(t.reasoning_tokens for t in per),
    )
    return per, total


def _rows(db: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    cur = db.execute("SELECT * FROM attempts ORDER BY id LIMIT ?", (limit,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def _rate(
    db: sqlite3.Connection,
    request_id: str,
    trace_id: str,
    score: float,
    label: str,
    client: str | None = None,
) -> Rated:
    key, value = ("request_id", request_id) if request_id else ("trace_id", trace_id)
    mine, args = ("", (value,)) if client is None else (" AND client = ?", (value, client))
    found = db.execute(
        f"SELECT id, request_id, trace_id, backend, category FROM attempts"
        f" WHERE {key} = ? AND outcome = 'success'{mine} ORDER BY id DESC LIMIT 1",
        args,
    ).fetchone()
    if found is None:
        whose = f" of {client!r}" if client else ""
        raise UnknownRequest(f"no answered request{whose} has {key.replace('_', ' ')} {value!r}")
    attempt_id, request_id, trace_id, backend, category = found
    before = db.execute(
        "SELECT score, ts FROM ratings WHERE request_id = ?", (request_id,)
    ).fetchone()
    if before is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(before[1]))
        raise AlreadyRated(
            f"request {request_id} was rated {before[0]:.2f} at {when}; ratings are final"
        )
    rated = Rated(request_id, trace_id, attempt_id, backend, category, score, label, time.time())
    db.execute(
        "INSERT INTO ratings (ts, request_id, trace_id, attempt_id, backend, category, score,"
        " label) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rated.ts, request_id, trace_id, attempt_id, backend, category, score, label),
    )
    return rated


def _spend(
    db: sqlite3.Connection, day_start: float, month_start: float
) -> dict[str, tuple[float, float]]:
    rows = db.execute(
        "SELECT backend, SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END), SUM(cost_usd)"
        " FROM attempts WHERE ts >= ? GROUP BY backend",
        (day_start, month_start),  # a month starts no later than any of its days
    ).fetchall()
    return {r[0]: (r[1] or 0.0, r[2] or 0.0) for r in rows}
