"""The cost ledger: one row per attempt in SQLite (WAL), written before the answer returns.

A row is written *before* a request leaves for a provider (outcome ``in_flight``) and completed
when the attempt ends, so even a caller killed mid-request leaves exactly one row per attempt the
provider saw; on the next start such rows become ``interrupted``. Attempts stopped before anything
was sent (bad input, identity rejection) are rows with ``sent = 0``.

WAL with ``synchronous=NORMAL`` makes each committed row survive a crash of the process (SIGKILL);
only a power loss can take the last transactions. No prompt or answer text is stored.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass

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
    sent INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS attempts_ts ON attempts(ts);
"""


# Columns added after the first release, with their definitions, for _migrate.
ADDED_COLUMNS = {"sent": "INTEGER NOT NULL DEFAULT 1"}

IN_FLIGHT = "in_flight"
INTERRUPTED = "interrupted"
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
)
_COLUMNS = ", ".join(_FIELDS)


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


@dataclass(frozen=True, slots=True)
class Totals:
    backend: str
    attempts: int
    successes: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated_rows: int


class Ledger:
    def __init__(self, path: str):
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add columns that a ledger made by an older version lacks (rows are kept)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(attempts)")}
        for column, ddl in ADDED_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE attempts ADD COLUMN {column} {ddl}")

    def _values(self, row: LedgerRow) -> tuple[object, ...]:
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
        )

    def record(self, row: LedgerRow) -> int:
        """Insert a complete row; returns its id."""
        cur = self._db.execute(
            f"INSERT INTO attempts ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})",
            self._values(row),
        )
        return int(cur.lastrowid or 0)

    async def begin(self, row: LedgerRow) -> int:
        """The row of an attempt about to be sent (outcome in_flight); complete it with finish."""
        from dataclasses import replace

        return self.record(replace(row, outcome=IN_FLIGHT, sent=True))

    def finish(self, row_id: int, row: LedgerRow) -> None:
        values = self._values(row)[1:]  # keep the original start time
        sets = ", ".join(f"{f} = ?" for f in _FIELDS[1:])
        self._db.execute(f"UPDATE attempts SET {sets} WHERE id = ?", (*values, row_id))

    async def interrupted(self) -> int:
        """Mark rows left in flight by a previous process; returns how many."""
        cur = self._db.execute(
            "UPDATE attempts SET outcome = ? WHERE outcome = ?", (INTERRUPTED, IN_FLIGHT)
        )
        return cur.rowcount

    async def totals(self, since: float = 0.0, until: float = 0.0) -> tuple[list[Totals], Totals]:
        until = until or time.time() + 1
        rows = self._db.execute(
            "SELECT backend, COUNT(*), SUM(outcome = 'success'), SUM(input_tokens),"
            " SUM(output_tokens), SUM(cost_usd), SUM(cost_source = 'estimated')"
            " FROM attempts WHERE ts >= ? AND ts < ? GROUP BY backend ORDER BY backend",
            (since, until),
        ).fetchall()
        per = [
            Totals(r[0], r[1], r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0.0, r[6] or 0)
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
        )
        return per, total

    def rows(self, limit: int = 1000) -> list[sqlite3.Row]:
        cur = self._db.cursor()
        cur.row_factory = sqlite3.Row
        return list(cur.execute("SELECT * FROM attempts ORDER BY id LIMIT ?", (limit,)))

    def close(self) -> None:
        self._db.close()

    async def aclose(self) -> None:
        self._db.close()
