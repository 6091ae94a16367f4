"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import pg
from tests.ledger_db import PEEK, LedgerDB, PostgresDB, SQLiteDB


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.TestPostgres]:
    """One real PostgreSQL server for the session (tests/pg.py). A test that needs it fails,
    never skips, when it cannot be started."""
    try:
        server = pg.start()
    except Exception as exc:
        pytest.fail(
            f"cannot start the test PostgreSQL server ({type(exc).__name__}: {exc}). It comes"
            " from PyPI's pgserver, installed by `make setup` (pip install -e '.[dev]').",
            pytrace=False,
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: pg.TestPostgres) -> str:
    """A URL of the test server whose tables go to a fresh schema of their own."""
    return postgres.url()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_db(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerDB:
    """A fresh ledger database, once on SQLite (a file) and once on PostgreSQL (a schema)."""
    if request.param == "sqlite":
        return SQLiteDB(tmp_path / "ledger.db")
    server = request.getfixturevalue("postgres")
    return PostgresDB(server, server.url())


@pytest.fixture
def peek(ledger_db: LedgerDB) -> Callable[[], list[tuple[Any, ...]]]:
    """(id, request_id, outcome, sent, cost_usd) of every committed row, in id order."""
    return lambda: ledger_db.query(PEEK)
