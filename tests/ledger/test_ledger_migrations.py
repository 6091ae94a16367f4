"""Versioned migrations: the same steps on both backends, and SQLite files from before them
upgraded in place with their rows."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from caller_svc import ledger_schema
from caller_svc.ledger import AlreadyRated, LedgerRow, LedgerUnavailable, open_ledger
from caller_svc.ledger_schema import MIGRATIONS, SchemaTooNew, pending
from tests.ledger_db import LedgerDB, SQLiteDB

NEWEST = MIGRATIONS[-1].version

# The ledger exactly as the caller wrote it before migrations were versioned (and before rows
# named their caller): caller_svc/ledger.py's SCHEMA at that time.
UNVERSIONED_SCHEMA = """
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
    reasoning_tokens INTEGER NOT NULL DEFAULT 0
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


def versions(ledger_db: LedgerDB) -> list[int]:
    return [r[0] for r in ledger_db.query("SELECT version FROM ledger_migrations ORDER BY version")]


def answered(request_id: str, cost: float = 0.5) -> LedgerRow:
    return LedgerRow("gpt", "m", "success", 10, 5, cost, "provider", 1.0, request_id=request_id)


async def test_a_new_database_gets_every_migration_once(ledger_db: LedgerDB) -> None:
    assert await ledger_db.migrate() == [m.version for m in MIGRATIONS]
    assert await ledger_db.migrate() == []  # applied once
    assert versions(ledger_db) == [m.version for m in MIGRATIONS]
    ledger = await open_ledger(ledger_db.target)  # opening migrates nothing more
    await ledger.aclose()
    assert versions(ledger_db) == [m.version for m in MIGRATIONS]


async def test_both_backends_end_with_the_same_columns(tmp_path: Path, ledger_db: LedgerDB) -> None:
    sqlite_db = SQLiteDB(tmp_path / "reference.db")
    await sqlite_db.migrate()
    await ledger_db.migrate()
    same_type = {"INTEGER": {"integer", "bigint"}, "REAL": {"double precision"}, "TEXT": {"text"}}
    for table in ("attempts", "ratings"):
        here, reference = ledger_db.columns(table), sqlite_db.columns(table)
        assert [c[0] for c in here] == [c[0] for c in reference]
        for (name, kind, not_null, _), (_, ref_kind, ref_not_null, _) in zip(
            here, reference, strict=True
        ):
            assert kind == ref_kind or kind in same_type[ref_kind], name
            assert not_null == ref_not_null or name == "id", name  # (SQLite's rowid alias)
    assert {"caller_id", "client"} <= {c[0] for c in ledger_db.columns("attempts")}
    # every column a row is written with exists on both
    assert set(ledger_schema.FIELDS) | {"caller_id"} <= {
        c[0] for c in ledger_db.columns("attempts")
    }


async def test_version_3_adds_up_what_was_spent_before_it_per_day(ledger_db: LedgerDB) -> None:
    assert await ledger_db.migrate(upto=2) == [1, 2]
    day = 86400
    ledger_db.execute(
        "INSERT INTO attempts (ts, backend, model, outcome, input_tokens, output_tokens,"
        " cost_usd, cost_source, latency_ms, caller_id)"
        f" VALUES ({2 * day + 5}, 'gpt', 'm', 'success', 1, 1, 0.5, 'provider', 1, 'a'),"
        f" ({3 * day}, 'gpt', 'm', 'success', 1, 1, 0.25, 'provider', 1, 'b'),"
        f" ({3 * day + 7}, 'claude', 'm', 'success', 1, 1, 1.5, 'provider', 1, 'a'),"
        f" ({3 * day + 9}, 'claude', 'm', 'in_flight', 0, 0, 0, 'estimated', 0, 'a')"
    )
    ledger = await open_ledger(ledger_db.target, caller_id="a")
    assert versions(ledger_db) == [m.version for m in MIGRATIONS]
    assert await ledger.spend(3 * day, 2 * day) == {"gpt": (0.25, 0.75), "claude": (1.5, 1.5)}
    assert await ledger.spend(3 * day, 2 * day, by_client=True) == {"": (1.75, 2.25)}
    await ledger.aclose()


async def test_a_database_at_version_1_is_upgraded_with_its_rows(ledger_db: LedgerDB) -> None:
    assert await ledger_db.migrate(upto=1) == [1]
    ledger_db.execute(
        "INSERT INTO attempts (ts, request_id, backend, model, outcome, input_tokens,"
        " output_tokens, cost_usd, cost_source, latency_ms)"
        " VALUES (1, 'old-answer', 'gpt', 'm', 'success', 3, 4, 0.5, 'provider', 1),"
        " (2, 'old-in-flight', 'gpt', 'm', 'in_flight', 0, 0, 0, 'estimated', 0)"
    )
    ledger = await open_ledger(ledger_db.target, caller_id="new")
    assert versions(ledger_db) == [m.version for m in MIGRATIONS]
    # a row in flight from before rows named their caller: its process is gone
    assert await ledger.interrupted() == 1
    ledger.record(answered("new-answer"))
    rows = await ledger.rows()
    await ledger.aclose()
    assert [(r["request_id"], r["outcome"], r["caller_id"], r["client"]) for r in rows] == [
        ("old-answer", "success", "", ""),
        ("old-in-flight", "interrupted", "", ""),
        ("new-answer", "success", "new", ""),
    ]


async def test_a_schema_newer_than_this_caller_is_refused_clearly(ledger_db: LedgerDB) -> None:
    await ledger_db.migrate()
    ledger_db.execute(
        f"INSERT INTO ledger_migrations (version, name, applied_at)"
        f" VALUES ({NEWEST + 1}, 'from the future', 0)"
    )
    with pytest.raises(
        LedgerUnavailable, match=f"schema is at version {NEWEST + 1}, newer than this caller"
    ):
        await open_ledger(ledger_db.target)


def test_pending_lists_what_a_database_lacks() -> None:
    assert [m.version for m in pending([])] == [m.version for m in MIGRATIONS]
    assert pending([m.version for m in MIGRATIONS]) == []
    assert [m.version for m in pending([], upto=1)] == [1]
    with pytest.raises(SchemaTooNew, match="run a caller at least as new"):
        pending([1, 2, 99])


async def test_callers_starting_together_migrate_once(postgres: object, pg_url: str) -> None:
    ledgers = await asyncio.gather(*(open_ledger(pg_url, caller_id=f"c{i}") for i in range(5)))
    for ledger in ledgers:
        await ledger.aclose()
    with postgres.admin(pg_url) as conn:  # type: ignore[attr-defined]
        found = conn.execute("SELECT version FROM ledger_migrations ORDER BY version").fetchall()
    assert [r[0] for r in found] == [m.version for m in MIGRATIONS]


# -- SQLite files from before versioned migrations ----------------------------------------------


async def test_a_sqlite_ledger_from_before_versioning_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(UNVERSIONED_SCHEMA)
        db.execute(
            "INSERT INTO attempts (ts, request_id, trace_id, backend, model, outcome,"
            " input_tokens, output_tokens, cost_usd, cost_source, latency_ms, reasoning_tokens)"
            " VALUES (10, 'answered', 't1', 'claude', 'm', 'success', 30, 40, 0.25, 'provider',"
            " 5, 7), (11, 'killed', 't2', 'gpt', 'm', 'in_flight', 0, 0, 0, 'estimated', 0, 0)"
        )
        db.execute(
            "INSERT INTO ratings (ts, request_id, trace_id, attempt_id, backend, score)"
            " VALUES (12, 'answered', 't1', 1, 'claude', 0.9)"
        )
        db.commit()
    ledger = await open_ledger(str(path), caller_id="me")
    assert await ledger.interrupted() == 1  # the old process is gone
    _, total = await ledger.totals()
    assert (total.attempts, total.cost_usd, total.reasoning_tokens) == (2, 0.25, 7)
    with pytest.raises(AlreadyRated, match=r"rated 0\.90"):  # the old rating is still there
        await ledger.rate("answered", "", 0.5, "")
    ledger.record(answered("after"))
    rows = await ledger.rows()
    await ledger.aclose()
    assert [(r["id"], r["request_id"], r["outcome"], r["caller_id"]) for r in rows] == [
        (1, "answered", "success", ""),
        (2, "killed", "interrupted", ""),
        (3, "after", "success", "me"),
    ]
    with closing(sqlite3.connect(path)) as db:
        assert [r[0] for r in db.execute("SELECT version FROM ledger_migrations")] == [
            m.version for m in MIGRATIONS
        ]
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"attempts_ts", "attempts_in_flight"} <= indexes


async def test_a_sqlite_ledger_from_the_first_release_is_migrated_not_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the first release's table, without `sent`
        db.execute(
            "CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
            " trace_id TEXT NOT NULL DEFAULT '', request_id TEXT NOT NULL DEFAULT '',"
            " backend TEXT NOT NULL, model TEXT NOT NULL, category TEXT NOT NULL DEFAULT '',"
            " attempt INTEGER NOT NULL DEFAULT 1, outcome TEXT NOT NULL,"
            " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
            " cached_input_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL,"
            " cost_source TEXT NOT NULL, latency_ms REAL NOT NULL,"
            " http_status INTEGER NOT NULL DEFAULT 0,"
            " identity_redactions INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO attempts (ts, backend, model, outcome, input_tokens,"
            " output_tokens, cost_usd, cost_source, latency_ms)"
            " VALUES (1, 'gpt', 'm', 'success', 3, 4, 0.5, 'provider', 1)"
        )
    ledger = await open_ledger(str(path))
    ledger.record(
        LedgerRow(
            "claude",
            "m",
            "success",
            1 + 30 + 40,
            2,
            0.25,
            "provider",
            1.0,
            cached_input_tokens=30,
            cache_write_tokens=40,
            reasoning_tokens=1,
        )
    )
    _, total = await ledger.totals()
    assert (total.attempts, total.cost_usd) == (2, 0.75)
    rows = await ledger.rows()
    assert [r["sent"] for r in rows] == [1, 1]
    # the old row gets the new columns as 0; the new row keeps its breakdown
    assert [(r["cache_write_tokens"], r["reasoning_tokens"]) for r in rows] == [(0, 0), (40, 1)]
    assert (total.cached_input_tokens, total.cache_write_tokens, total.reasoning_tokens) == (
        30,
        40,
        1,
    )
    await ledger.aclose()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM ratings").fetchone() == (0,)  # a table it lacked
