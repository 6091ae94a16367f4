"""The ledger in a SQLite file (WAL): the default, one writer thread per ledger.

Threading model
---------------
One dedicated writer thread owns the only SQLite connection; nothing touches SQLite on the event
loop. Operations go to the thread through a FIFO queue. The thread takes everything queued (up to
``MAX_BATCH``) and applies the writes in one transaction (group commit: under concurrency many
begins/finishes share one commit). The futures of ``begin``, ``finish``/``record``, ``flush`` and
``interrupted`` (a write too) are resolved only after that transaction has committed. Reads
(``totals``, ``rows``, ``rate``, ``spend``) run on the same thread, in queue order, outside the
write transaction: so they see every write queued before them (read-your-writes for the
process's own queued finishes; a write that failed and is kept for retry is not visible yet), at
the price of waiting behind a write that is stuck on SQLite's lock.

WAL with ``synchronous=NORMAL`` makes each committed transaction survive a crash of the process;
only a power loss can take the last transactions. A database locked beyond ``busy_timeout``
(another process holding the write lock), a full or read-only disk: the transaction fails and
the rules of ``caller_svc/ledger.py`` apply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from caller_svc import ledger_schema as schema
from caller_svc.ledger_ops import (
    KEPT,
    WAKE,
    AlreadyRated,
    Begin,
    Cancel,
    Close,
    FailureLog,
    Finish,
    Flush,
    Interrupted,
    LedgerUnavailable,
    Op,
    QueuedWrites,
    RatingRefused,
    Read,
    Record,
    UnknownRequest,
    Waiter,
    abandon,
    reject,
    settle_committed,
    settle_failed,
    split_kept,
)
from caller_svc.ledger_schema import Rated, Totals

log = logging.getLogger("caller_svc.ledger")

DEFAULT_BUSY_TIMEOUT_S = 5.0
MAX_BATCH = 512  # operations per transaction
RETRY_BACKOFF_S = (0.05, 2.0)  # first and longest wait before retrying kept writes
WARN_EVERY_S = 10.0  # while writes keep failing, how often to say so

SQL = schema.SQLITE.sql
INSERT = SQL(schema.INSERT)
UPDATE = SQL(schema.UPDATE)

# Errors that belong to one row (no retry can fix them); every other error aborts the transaction
# and is treated as the database being unavailable (locked, full, read-only, failing disk).
ROW_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    ValueError,
    TypeError,
    OverflowError,
)


class SQLiteLedger(QueuedWrites):
    """The ledger in a SQLite file (WAL), written by one dedicated thread (see the module doc).

    The constructor returns at once; the thread opens (and migrates) the file first, so an
    operation queued before that just waits. :meth:`ready` (used by ``open_ledger``) reports an
    open failure. Rows it writes carry ``caller_id``.
    """

    def __init__(
        self, path: str, *, caller_id: str = "", busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S
    ):
        self.path = path
        self.caller_id = caller_id
        self.busy_timeout = busy_timeout
        self.transactions = 0  # write transactions committed (observability, tests)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _stopped against a racing put
        self._stopped = False
        self._stop_error: LedgerUnavailable = LedgerUnavailable("the ledger is closed")
        self._give_up = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._failures = FailureLog(WARN_EVERY_S)
        self._thread = threading.Thread(
            target=self._run, name=f"ledger-writer:{os.path.basename(path)}", daemon=True
        )
        self._thread.start()

    # -- the async API (event loop side) ---------------------------------------------------

    async def ready(self) -> None:
        """Wait until the database is open and migrated (raises LedgerUnavailable if not)."""
        await self._read(lambda db: None)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Flush and close. Rows that still cannot be written after ``timeout`` seconds are
        logged one by one at ERROR and abandoned, so that shutdown cannot hang."""
        op = Close(Waiter())
        if not self._put(op):
            return
        try:
            await asyncio.wait_for(asyncio.shield(op.waiter.future), timeout)
        except TimeoutError:
            self._give_up.set()
            self._queue.put(WAKE)
            try:  # at most one more attempt that is stuck on the lock
                await asyncio.wait_for(op.waiter.future, self.busy_timeout + 1.0)
            except (TimeoutError, LedgerUnavailable):
                pass

    async def interrupted(self) -> int:
        op = Interrupted(Waiter())
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
        query, params = schema.totals_query(since, until or time.time() + 1, by, client)
        rows = await self._read(lambda db: db.execute(SQL(query), params).fetchall())
        return schema.totals_from_rows(rows, by)

    async def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        return await self._read(lambda db: _rows(db, limit))  # type: ignore[no-any-return]

    async def rate(
        self, request_id: str, trace_id: str, score: float, label: str, client: str | None = None
    ) -> Rated:
        # A read with one autocommitted insert: ratings are rare and must answer at once.
        rated = await self._read(lambda db: _rate(db, request_id, trace_id, score, label, client))
        return rated  # type: ignore[no-any-return]

    async def spend(
        self, day_start: float, month_start: float, *, by_client: bool = False
    ) -> dict[str, tuple[float, float]]:
        query, params = schema.spend_query(day_start, month_start, by_client=by_client)
        rows = await self._read(lambda db: db.execute(SQL(query), params).fetchall())
        return schema.spend_from_rows(rows)

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        op = Read(Waiter(), fn)
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
            migrate(db)
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
        kept: list[Op] = []
        backoff = 0.0
        while True:
            try:
                first = self._queue.get(timeout=backoff) if kept else self._queue.get()
            except queue.Empty:
                first = WAKE
            batch = kept
            if first is not WAKE:
                batch.append(first)
            while len(batch) < MAX_BATCH:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is not WAKE:
                    batch.append(op)
            if self._give_up.is_set():
                self._stop(LedgerUnavailable("the ledger was closed with writes pending"), batch)
                return
            try:
                kept, failed, closed = self._round(batch)
            except Exception as exc:  # a bug here must not end the thread or hang a waiter
                log.exception("ledger writer: unexpected error; keeping the batch's rows")
                kept, failed, closed = (
                    split_kept(batch, LedgerUnavailable(f"ledger writer error: {exc}")),
                    True,
                    False,
                )
            if closed:
                return
            if failed and kept:
                lo, hi = RETRY_BACKOFF_S
                backoff = min(hi, max(lo, backoff * 2))
            else:
                backoff = 0.0

    def _round(self, batch: list[Op]) -> tuple[list[Op], bool, bool]:
        """Apply one batch in order; returns (ops kept for the next round, failed, closed)."""
        kept: list[Op] = []
        group: list[Op] = []
        error: LedgerUnavailable | None = None
        for i, op in enumerate(batch):
            if error is not None:  # this round's transaction failed: don't wait on the lock again
                if isinstance(op, KEPT):
                    kept.append(op)
                elif isinstance(op, Read):
                    self._apply_read(op)
                else:
                    op.waiter.settle(error=error)
                continue
            if isinstance(op, Read | Close):
                error = self._commit(group, kept)
                group = []
                if error is not None:
                    if isinstance(op, Close):
                        kept.append(op)
                    else:
                        self._apply_read(op)
                    continue
                if isinstance(op, Read):
                    self._apply_read(op)
                    continue
                self._stop(self._stop_error, batch[i + 1 :])
                op.waiter.settle()
                return [], False, True
            group.append(op)
        if group and error is None:
            error = self._commit(group, kept)
        return kept, error is not None, False

    def _commit(self, group: list[Op], kept: list[Op]) -> LedgerUnavailable | None:
        """One transaction for the writes of ``group``; settles their waiters after COMMIT.
        On failure the durable writes (and barriers) go to ``kept``; begins fail."""
        assert self._db is not None
        db = self._db
        writes = [op for op in group if not isinstance(op, Flush)]
        try:
            if writes:
                db.execute("BEGIN IMMEDIATE")
                for write in writes:
                    try:
                        self._apply(db, write)
                    except ROW_ERRORS as exc:  # this row only; the transaction goes on
                        reject(write, exc)
                db.execute("COMMIT")
                self.transactions += 1
        except Exception as exc:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            error = LedgerUnavailable(f"ledger write failed: {exc}")
            settle_failed(group, error, kept)
            self._failures.failed(exc, kept)
            return error
        self._failures.committed()
        settle_committed(group)
        return None

    def _apply(self, db: sqlite3.Connection, op: Op) -> None:
        if isinstance(op, Begin):
            op.error = None
            op.row_id = int(
                db.execute(INSERT, schema.insert_values(op.row, self.caller_id)).lastrowid or 0
            )
        elif isinstance(op, Finish):
            db.execute(UPDATE, schema.update_values(op.row_id, op.row))  # keeps the start time
        elif isinstance(op, Record):
            db.execute(INSERT, schema.insert_values(op.row, self.caller_id))
        elif isinstance(op, Cancel):
            if op.begin.row_id:
                db.execute(SQL(schema.CANCEL), (op.begin.row_id, schema.IN_FLIGHT))
        elif isinstance(op, Interrupted):
            op.count = db.execute(SQL(schema.INTERRUPT), (self.caller_id,)).rowcount

    def _apply_read(self, op: Read) -> None:
        assert self._db is not None and op.fn is not None
        try:
            result = op.fn(self._db)
        except RatingRefused as exc:  # an answer about the request, not a ledger failure
            op.waiter.settle(error=exc)
        except Exception as exc:
            op.waiter.settle(error=LedgerUnavailable(f"ledger read failed: {exc}"))
        else:
            op.waiter.settle(result)

    def _stop(self, error: LedgerUnavailable, rest: list[Op]) -> None:
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
            if op is not WAKE:
                rest.append(op)
        abandon(rest, error)
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error as exc:
                log.warning("closing the ledger: %s", exc)
            self._db = None


# -- schema and queries on a connection (the writer thread's) ----------------------------------


def migrate(db: sqlite3.Connection, *, upto: int | None = None) -> list[int]:
    """Bring the database to the newest schema (or version ``upto``) in one transaction;
    returns the versions applied. A ledger from before migrations were versioned is adopted as
    version 1 first (the columns it lacks are added, rows kept)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        db.execute(schema.SQLITE.ddl(schema.VERSION_TABLE))
        if "attempts" in tables and "ledger_migrations" not in tables:
            _adopt_unversioned(db)
        applied = [r[0] for r in db.execute(schema.APPLIED_VERSIONS)]
        steps = schema.pending(applied, upto=upto)
        for step in steps:
            for statement in step.statements_for(schema.SQLITE):
                db.execute(statement)
            db.execute(SQL(schema.RECORD_VERSION), (step.version, step.name, time.time()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return [s.version for s in steps]


def _adopt_unversioned(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    for column, ddl in schema.UNVERSIONED_ADDED_COLUMNS.items():
        if column not in have:
            db.execute(f"ALTER TABLE attempts ADD COLUMN {column} {ddl}")
    first = schema.MIGRATIONS[0]
    for statement in first.statements:  # IF NOT EXISTS: what the file already has stays
        db.execute(schema.SQLITE.ddl(statement))
    db.execute(SQL(schema.RECORD_VERSION), (first.version, first.name, time.time()))


def _rows(db: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    cur = db.execute(SQL(schema.ROWS), (limit,))
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
    query, params, missing = schema.answered_query(request_id, trace_id, client)
    found = db.execute(SQL(query), params).fetchone()
    if found is None:
        raise UnknownRequest(missing)
    attempt_id, request_id, trace_id, backend, category = found
    rated = Rated(request_id, trace_id, attempt_id, backend, category, score, label, time.time())
    cur = db.execute(
        SQL(schema.INSERT_RATING_ONCE),
        (rated.ts, request_id, trace_id, attempt_id, backend, category, score, label),
    )
    if cur.rowcount == 1:
        return rated
    score_before, ts_before = db.execute(SQL(schema.RATING_OF), (request_id,)).fetchone()
    raise AlreadyRated(schema.already_rated_message(request_id, score_before, ts_before))
