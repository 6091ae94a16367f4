"""The same ledger tests on SQLite and on PostgreSQL (the ``ledger_db`` fixture, tests/conftest.py).

Each backend gives a fresh database (a file; a schema of the session's server) and what a test
needs to look at it from outside: committed rows through a connection of its own, another
session holding the write lock, a trigger that rejects rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from caller_svc import ledger_pg, ledger_sqlite
from caller_svc.ledger_pg import PostgresLedger
from caller_svc.ledger_sqlite import SQLiteLedger

PEEK = "SELECT id, request_id, outcome, sent, cost_usd FROM attempts ORDER BY id"
AnyLedger = SQLiteLedger | PostgresLedger


class Blocker:
    """Another session holding the write lock on the attempts table until ``release()``."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


class SQLiteDB:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = str(path)

    def ledger(self, *, caller_id: str = "test", timeout: float | None = None) -> SQLiteLedger:
        kw = {} if timeout is None else {"busy_timeout": timeout}
        return SQLiteLedger(self.target, caller_id=caller_id, **kw)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Committed rows only, through a connection of our own (as another process sees)."""
        with closing(sqlite3.connect(self.path)) as db:
            return db.execute(sql, params).fetchall()

    def execute(self, sql: str) -> None:
        with closing(sqlite3.connect(self.path)) as db:
            db.executescript(sql)

    def hold_write_lock(self) -> Blocker:
        blocker = sqlite3.connect(self.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        return Blocker(blocker)

    def reject_backend(self, backend: str) -> None:
        self.execute(
            f"CREATE TRIGGER no_poison BEFORE INSERT ON attempts WHEN NEW.backend = '{backend}'"
            " BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )

    async def migrate(self, upto: int | None = None) -> list[int]:
        """Run the versioned migrations on a connection of our own (up to ``upto``)."""
        with closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            return ledger_sqlite.migrate(db, upto=upto)

    def columns(self, table: str) -> list[tuple[str, str, bool, Any]]:
        """(name, type, not null, default) of each column, in order."""
        rows = self.query(f"PRAGMA table_info({table})")
        return [(r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def writer_alive(self, ledger: AnyLedger) -> bool:
        assert isinstance(ledger, SQLiteLedger)
        return ledger._thread.is_alive()

    async def writer_stopped(self, ledger: AnyLedger) -> None:
        assert isinstance(ledger, SQLiteLedger)
        await asyncio.to_thread(ledger._thread.join, 10)
        assert not ledger._thread.is_alive()


class PostgresDB:
    kind = "postgresql"

    def __init__(self, server: Any, url: str) -> None:
        self.server = server
        self.target = url

    def ledger(self, *, caller_id: str = "test", timeout: float | None = None) -> PostgresLedger:
        kw = {} if timeout is None else {"lock_timeout": timeout}
        return PostgresLedger(self.target, caller_id=caller_id, **kw)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.server.admin(self.target) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[no-any-return]

    def execute(self, sql: str) -> None:
        with self.server.admin(self.target) as conn:
            conn.execute(sql)

    def hold_write_lock(self) -> Blocker:
        conn = self.server.admin(self.target)
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE attempts IN EXCLUSIVE MODE")  # readers go on, writers wait
        return Blocker(conn)

    def reject_backend(self, backend: str) -> None:
        self.execute(
            "CREATE FUNCTION no_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.backend = '{backend}' THEN RAISE EXCEPTION 'poisoned row'; END IF;"
            " RETURN NEW; END $$;"
            " CREATE TRIGGER no_poison BEFORE INSERT ON attempts"
            " FOR EACH ROW EXECUTE FUNCTION no_poison()"
        )

    async def migrate(self, upto: int | None = None) -> list[int]:
        async with await psycopg.AsyncConnection.connect(self.target, autocommit=True) as conn:
            return await ledger_pg.migrate(conn, upto=upto)

    def columns(self, table: str) -> list[tuple[str, str, bool, Any]]:
        rows = self.query(
            "SELECT column_name, data_type, is_nullable = 'NO', column_default"
            " FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def writer_alive(self, ledger: AnyLedger) -> bool:
        assert isinstance(ledger, PostgresLedger)
        return not ledger._task.done()

    async def writer_stopped(self, ledger: AnyLedger) -> None:
        assert isinstance(ledger, PostgresLedger)
        await asyncio.wait_for(asyncio.shield(ledger._task), 10)


LedgerDB = SQLiteDB | PostgresDB
