"""Both ways of linking the stack, for every end-to-end test.

A test that runs the stack — it calls ``tests.stack.running_stack``, or takes a stack fixture (a
parameter typed ``Stack``) — runs twice: ``[inproc]``, the components linked in-process as one
process runs them (``uniwizard up``), and ``[grpc]``, linked over real gRPC channels as three
processes run them (``uniwizard up --split``). The test itself is written once. A test that only
makes sense one way (restarting the registry alone, which one process cannot do) says so:
``@pytest.mark.links("grpc")``.

And a real PostgreSQL server for the tests that need one (``postgres``, ``pg_url``), the
ledger tests' two databases (``ledger_db``: SQLite and PostgreSQL), and the spans the services
export (``spans``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests import pg, stack
from tests.ledger_db import PEEK, LedgerDB, PostgresDB, SQLiteDB
from uniwizard import telemetry


@pytest.fixture(autouse=True, scope="module")
def stack_links(request: pytest.FixtureRequest) -> Iterator[stack.Links]:
    """How ``running_stack`` links the components in this test. Module-scoped, so a module's
    tests run all one way then all the other; a module-scoped stack fixture takes it as an
    argument (and passes ``links=stack_links``) so that it is built once per way."""
    links: stack.Links = getattr(request, "param", stack.default_links)
    saved, stack.default_links = stack.default_links, links
    try:
        yield links
    finally:
        stack.default_links = saved


def runs_the_stack(test: object) -> bool:
    if not callable(test):
        return False
    if "running_stack(" in inspect.getsource(test):
        return True
    params = inspect.signature(test).parameters.values()
    return any(p.annotation in ("Stack", stack.Stack) for p in params)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not runs_the_stack(metafunc.function):
        return
    marker = metafunc.definition.get_closest_marker("links")
    modes = list(marker.args) if marker else stack.LINKS
    metafunc.parametrize("stack_links", modes, indirect=True, scope="module")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the services make, kept in memory: request it before the stack, so that the
    services see the exporter when they start."""
    exporter = InMemorySpanExporter()
    telemetry.use_exporter(exporter)
    try:
        yield exporter
    finally:
        telemetry.use_exporter(None)


# -- PostgreSQL and the ledger's databases ---------------------------------------------------


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
