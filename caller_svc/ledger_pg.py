"""The ledger in PostgreSQL, shared by several callers: psycopg 3 (async) with a connection pool.

Selected by a ``postgresql://`` target (``UNIWIZARD_LEDGER``); the guarantees are those of
``caller_svc/ledger.py``, the schema and the migrations those of ``caller_svc/ledger_schema.py``.

Model
-----
Nothing blocks the event loop: every database call is an awaited psycopg call. One writer task
takes the queued operations in order (up to ``MAX_BATCH``) and applies the writes in one
transaction on a pooled connection (group commit); waiters hear of it after COMMIT. A read
(``totals``, ``rows``, ``rate``, ``spend``) first passes a barrier in the same queue, so it sees
the writes this process queued before it (and waits for them to be tried), then runs on a
connection of its own from the pool: a slow read never holds up the writes queued after it.

In PostgreSQL one failing statement aborts its transaction, so a batch in which the database
rejects a row (a constraint, a trigger, a value out of range) is applied again with a savepoint
per row: the rejected row fails alone (logged at ERROR), the others commit. Waiting for a lock
is bounded by ``lock_timeout`` (set on every connection), waiting for a connection (server
down, pool exhausted) by the same, and a whole transaction by ``lock_timeout + SLACK_S``; past
those the transaction fails and the rules of ``caller_svc/ledger.py`` apply.

Migrations run once per database under an advisory lock, so callers starting together do not
race. The ledger's tables live in the first schema of the connection's ``search_path`` (set it
with ``?options=-csearch_path%3Dname`` in the URL to keep the ledger in a schema of its own).
The URL's password never appears in a log line or an error.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool

from caller_svc import ledger_schema as schema
from caller_svc.ledger import redact
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

DEFAULT_LOCK_TIMEOUT_S = 5.0
DEFAULT_POOL_SIZE = 4  # the writer's connection and reads beside it
OPEN_TIMEOUT_S = 30.0  # connect and migrate
SLACK_S = 30.0  # a transaction's bound beyond the lock timeout
MAX_BATCH = 512
RETRY_BACKOFF_S = (0.05, 2.0)
WARN_EVERY_S = 10.0
MIGRATION_LOCK = 0x756E_6977_6C65_6467  # pg_advisory_xact_lock key: "uniwledg"

SQL = schema.POSTGRESQL.sql
INSERT = SQL(schema.INSERT)
INSERT_RETURNING = INSERT + " RETURNING id"
UPDATE = SQL(schema.UPDATE)

# Errors that belong to one row; every other error is the database being unavailable.
ROW_ERRORS: tuple[type[Exception], ...] = (
    psycopg.IntegrityError,
    psycopg.DataError,
    psycopg.errors.RaiseException,
    ValueError,
    TypeError,
    OverflowError,
)


class PostgresLedger(QueuedWrites):
    """The ledger in a PostgreSQL database (see the module doc). Bound to the event loop it is
    created on. The constructor returns at once; the writer connects and migrates first, so an
    operation queued before that just waits; :meth:`ready` reports an open failure."""

    def __init__(
        self,
        url: str,
        *,
        caller_id: str = "",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        self.url = url
        self.target = redact(url)
        self.caller_id = caller_id
        self.lock_timeout = lock_timeout
        self.pool_size = max(2, pool_size)
        self.transactions = 0  # write transactions committed (observability, tests)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stopped = False
        self._stop_error = LedgerUnavailable("the ledger is closed")
        self._give_up = False
        self._pool: AsyncConnectionPool[Any] | None = None
        self._batch: list[Op] = []
        self._failures = FailureLog(WARN_EVERY_S)
        # Its own context: the writer belongs to no request's trace.
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="ledger-writer:postgresql", context=contextvars.Context()
        )

    # -- the async API ------------------------------------------------------------------------

    async def ready(self) -> None:
        """Wait until the database is reachable and migrated (raises LedgerUnavailable if not)."""
        await self._barrier()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Flush and close. Rows that still cannot be written after ``timeout`` seconds are
        logged one by one at ERROR and abandoned, so that shutdown cannot hang."""
        op = Close(Waiter())
        if self._put(op):
            try:
                await asyncio.wait_for(asyncio.shield(op.waiter.future), timeout)
            except TimeoutError:
                self._give_up = True
                self._queue.put_nowait(WAKE)
                try:  # at most one more attempt that is stuck on a lock or a connection
                    await asyncio.wait_for(op.waiter.future, self.lock_timeout + 1.0)
                except (TimeoutError, LedgerUnavailable):
                    pass
        if not self._task.done():
            self._task.cancel()  # still stuck: its batch is logged as not written
        await asyncio.gather(self._task, return_exceptions=True)

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
        return schema.totals_from_rows(await self._fetch(SQL(query), params), by)

    async def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        async def read(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
            cur = await conn.execute(SQL(schema.ROWS), (limit,))
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]

        return await self._read(read)  # type: ignore[no-any-return]

    async def rate(
        self, request_id: str, trace_id: str, score: float, label: str, client: str | None = None
    ) -> Rated:
        async def store(conn: psycopg.AsyncConnection[Any]) -> Rated:
            return await _rate(conn, request_id, trace_id, score, label, client)

        return await self._read(store)  # type: ignore[no-any-return]

    async def spend(
        self, day_start: float, month_start: float, *, by_client: bool = False
    ) -> dict[str, tuple[float, float]]:
        query, params = schema.spend_query(day_start, month_start, by_client=by_client)
        return schema.spend_from_rows(await self._fetch(SQL(query), params))

    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        async def read(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            return await (await conn.execute(sql, params)).fetchall()

        return await self._read(read)  # type: ignore[no-any-return]

    async def _read(self, fn: Any) -> Any:
        """Run ``fn(connection)`` on a pooled connection once the writes queued before it
        were tried. Database failures are LedgerUnavailable; RatingRefused passes through."""
        await self._barrier()
        pool = self._pool
        if pool is None:  # closed meanwhile
            raise self._stop_error
        try:
            async with asyncio.timeout(self.lock_timeout + SLACK_S):
                async with pool.connection(timeout=self.lock_timeout) as conn:
                    return await fn(conn)
        except (psycopg.Error, TimeoutError, OSError) as exc:
            raise LedgerUnavailable(f"ledger read failed: {_line(exc)}") from None

    async def _barrier(self) -> None:
        op = Read(Waiter())
        if not self._put(op):
            raise self._stop_error
        await op.waiter.future

    def _put(self, op: object) -> bool:
        if self._stopped:
            return False
        self._queue.put_nowait(op)
        return True

    # -- the writer task ----------------------------------------------------------------------

    async def _open(self) -> AsyncConnectionPool[Any]:
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, **self._connect_args()
            )
            async with conn:
                await migrate(conn)
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                open=False,
                kwargs={"autocommit": True, **self._connect_args()},
                configure=self._configure,
                # A connection the server dropped (restart, failover, idle timeout) is found
                # and replaced when it is taken, not by failing an attempt's row.
                check=AsyncConnectionPool.check_connection,
                name="uniwizard-ledger",
                timeout=self.lock_timeout,
            )
            try:
                await pool.open(wait=True, timeout=OPEN_TIMEOUT_S)
            except BaseException:
                await pool.close()
                raise
            return pool

    def _connect_args(self) -> dict[str, Any]:
        return {
            "application_name": f"uniwizard-caller {self.caller_id}"[:63],
            "connect_timeout": max(2, int(self.lock_timeout + 0.999)),
        }

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"SET lock_timeout = {max(1, int(self.lock_timeout * 1000))}")

    async def _run(self) -> None:
        try:
            try:
                self._pool = await self._open()
            except Exception as exc:
                log.error("cannot open the cost ledger %s: %s", self.target, _line(exc))
                error = LedgerUnavailable(f"cannot open the ledger {self.target}: {_line(exc)}")
                await self._stop(error, [])
                return
            await self._loop()
        except asyncio.CancelledError:  # aclose gave up on a stuck writer
            closed = LedgerUnavailable("the ledger was closed with writes pending")
            await self._stop(closed, self._batch)

    async def _loop(self) -> None:
        kept: list[Op] = []
        backoff = 0.0
        while True:
            if kept:
                try:
                    first = await asyncio.wait_for(self._queue.get(), backoff)
                except TimeoutError:
                    first = WAKE
            else:
                first = await self._queue.get()
            batch = self._batch = kept
            if first is not WAKE:
                batch.append(first)
            while len(batch) < MAX_BATCH and not self._queue.empty():
                op = self._queue.get_nowait()
                if op is not WAKE:
                    batch.append(op)
            if self._give_up:
                await self._stop(
                    LedgerUnavailable("the ledger was closed with writes pending"), batch
                )
                return
            try:
                kept, failed, closed = await self._round(batch)
            except Exception as exc:  # a bug here must not end the writer or hang a waiter
                log.exception("ledger writer: unexpected error; keeping the batch's rows")
                kept = split_kept(batch, LedgerUnavailable(f"ledger writer error: {exc}"))
                failed, closed = True, False
            self._batch = kept
            if closed:
                return
            if failed and kept:
                lo, hi = RETRY_BACKOFF_S
                backoff = min(hi, max(lo, backoff * 2))
            else:
                backoff = 0.0

    async def _round(self, batch: list[Op]) -> tuple[list[Op], bool, bool]:
        """Apply one batch in order; returns (ops kept for the next round, failed, closed)."""
        kept: list[Op] = []
        group: list[Op] = []
        error: LedgerUnavailable | None = None
        for i, op in enumerate(batch):
            if error is not None:  # this round's transaction failed: don't wait on it again
                if isinstance(op, KEPT):
                    kept.append(op)
                elif isinstance(op, Read):
                    op.waiter.settle()  # the read goes ahead (and sees no kept row)
                else:
                    op.waiter.settle(error=error)
                continue
            if isinstance(op, Read | Close):
                error = await self._commit(group, kept)
                group = []
                if isinstance(op, Read):
                    op.waiter.settle()
                    continue
                if error is not None:
                    kept.append(op)
                    continue
                await self._stop(self._stop_error, batch[i + 1 :])
                op.waiter.settle()
                return [], False, True
            group.append(op)
        if group and error is None:
            error = await self._commit(group, kept)
        return kept, error is not None, False

    async def _commit(self, group: list[Op], kept: list[Op]) -> LedgerUnavailable | None:
        """One transaction for the writes of ``group``; settles their waiters after COMMIT.
        On failure the durable writes (and barriers) go to ``kept``; begins fail."""
        writes: list[Op] = [op for op in group if not isinstance(op, Flush)]
        try:
            if writes:
                try:
                    await self._transaction(writes, careful=False)
                except ROW_ERRORS:  # find the row the database rejects: one savepoint each
                    await self._transaction(writes, careful=True)
                self.transactions += 1
        except Exception as exc:
            error = LedgerUnavailable(f"ledger write failed: {_line(exc)}")
            settle_failed(group, error, kept)
            self._failures.failed(exc, kept)
            return error
        self._failures.committed()
        settle_committed(group)
        return None

    async def _transaction(self, writes: list[Op], *, careful: bool) -> None:
        """The writes in one transaction: pipelined (one round trip), or ``careful``: one
        savepoint per write, a write the database rejects failing alone."""
        assert self._pool is not None
        async with asyncio.timeout(self.lock_timeout + SLACK_S):
            async with self._pool.connection(timeout=self.lock_timeout) as conn:
                if careful:
                    async with conn.transaction():
                        for write in writes:
                            try:
                                async with conn.transaction():  # a savepoint
                                    await _took(write, await self._send(conn, write))
                            except ROW_ERRORS as exc:  # this row only; the transaction goes on
                                reject(write, exc)
                    return
                sent = []
                async with conn.pipeline(), conn.transaction():
                    for write in writes:
                        sent.append((write, await self._send(conn, write)))
                for write, cur in sent:  # every result is in once the pipeline synced
                    await _took(write, cur)

    async def _send(self, conn: psycopg.AsyncConnection[Any], op: Op) -> Any:
        """Send the statement of one write; returns its cursor (None if it needs none)."""
        if isinstance(op, Begin):
            op.error = None
            return await conn.execute(
                INSERT_RETURNING, schema.insert_values(op.row, self.caller_id)
            )
        if isinstance(op, Finish):
            return await conn.execute(UPDATE, schema.update_values(op.row_id, op.row))
        if isinstance(op, Record):
            return await conn.execute(INSERT, schema.insert_values(op.row, self.caller_id))
        if isinstance(op, Cancel):
            if op.begin.row_id:
                return await conn.execute(SQL(schema.CANCEL), (op.begin.row_id, schema.IN_FLIGHT))
            return None
        if isinstance(op, Interrupted):
            return await conn.execute(SQL(schema.INTERRUPT), (self.caller_id,))
        return None

    async def _stop(self, error: LedgerUnavailable, rest: list[Op]) -> None:
        """End the writer: no more operations are accepted; whatever is left is failed (or, for
        rows, logged at ERROR: never dropped silently); the pool is closed."""
        self._stopped = True
        self._stop_error = error
        while not self._queue.empty():
            op = self._queue.get_nowait()
            if op is not WAKE:
                rest.append(op)
        abandon(rest, error)
        self._batch = []
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close(timeout=5.0)
            except Exception as exc:
                log.warning("closing the ledger's connections: %s", exc)


# -- schema and queries on a connection --------------------------------------------------------


async def _took(op: Op, cur: Any) -> None:
    """What a write's statement answered: a begin's row id, how many rows were interrupted."""
    if isinstance(op, Begin):
        found = await cur.fetchone()
        op.row_id = int(found[0]) if found else 0
    elif isinstance(op, Interrupted):
        op.count = cur.rowcount


async def migrate(conn: psycopg.AsyncConnection[Any], *, upto: int | None = None) -> list[int]:
    """Bring the database to the newest schema (or version ``upto``) in one transaction, under
    an advisory lock so that callers starting together take turns; returns the versions
    applied."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(schema.POSTGRESQL.ddl(schema.VERSION_TABLE))
        cur = await conn.execute(schema.APPLIED_VERSIONS)
        steps = schema.pending([r[0] for r in await cur.fetchall()], upto=upto)
        for step in steps:
            for statement in step.statements_for(schema.POSTGRESQL):
                await conn.execute(statement)  # type: ignore[arg-type]
            await conn.execute(SQL(schema.RECORD_VERSION), (step.version, step.name, time.time()))
    return [s.version for s in steps]


async def _rate(
    conn: psycopg.AsyncConnection[Any],
    request_id: str,
    trace_id: str,
    score: float,
    label: str,
    client: str | None = None,
) -> Rated:
    async with conn.transaction():
        query, params, missing = schema.answered_query(request_id, trace_id, client)
        found = await (await conn.execute(SQL(query), params)).fetchone()
        if found is None:
            raise UnknownRequest(missing)
        attempt_id, request_id, trace_id, backend, category = found
        rated = Rated(
            request_id, trace_id, int(attempt_id), backend, category, score, label, time.time()
        )
        cur = await conn.execute(
            SQL(schema.INSERT_RATING_ONCE),
            (rated.ts, request_id, trace_id, attempt_id, backend, category, score, label),
        )
        if cur.rowcount == 1:
            return rated
        before = await (await conn.execute(SQL(schema.RATING_OF), (request_id,))).fetchone()
    score_before, ts_before = before if before is not None else (score, rated.ts)
    raise AlreadyRated(schema.already_rated_message(request_id, score_before, ts_before))


def _line(exc: BaseException) -> str:
    """An exception as one line (libpq's messages run over several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
