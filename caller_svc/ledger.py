"""The cost ledger: one row per provider attempt, written off the event loop.

Two backends with one API (:class:`Ledger`) and one schema (``caller_svc/ledger_schema.py``,
versioned migrations): a SQLite file (the default, ``caller_svc/ledger_sqlite.py``) or a
PostgreSQL database shared by several callers (``caller_svc/ledger_pg.py``). :func:`open_ledger`
picks one from its target: a path (or ``:memory:``) or a ``postgresql://`` URL.

Guarantees
----------
* A row is **committed before a request leaves for a provider**: ``await ledger.begin(row)``
  returns the row id only once the transaction holding the ``in_flight`` row has committed. So a
  caller killed mid-request still leaves exactly one row per attempt the provider saw.
* Every row names the caller process that wrote it (``caller_id``, see :func:`default_caller_id`).
  On its next start a caller turns **its own** rows left ``in_flight`` into ``interrupted``
  (:meth:`Ledger.interrupted`); rows of other callers sharing the database are never touched.
* Completing a row (:meth:`Ledger.finish`) and recording an attempt that was stopped before
  anything was sent (:meth:`Ledger.record`, ``sent = 0``) are *queued*, applied in the order they
  were queued, and never dropped silently. ``await ledger.flush()`` waits until everything queued
  so far is committed; ``await ledger.aclose()`` flushes and then closes.
  Each returns a future that may be ignored or awaited: ``True`` once its transaction committed,
  ``False`` as soon as a first try failed (the row is kept and retried) or the ledger is closed
  (the row is logged); it never raises. The caller awaits it before handing an answer back, so
  an answered attempt's row is complete in the database even if the process is killed right
  after, and a ledger that cannot write just now does not hold the answer. Rows not awaited
  (cancellations) are committed with the next transaction; if the process is killed before, a
  completion is lost and its row stays ``in_flight`` (→ ``interrupted``: counted, without its
  cost).
* Reads (``totals``, ``rows``, ``rate``, ``spend``) see every write this process queued before
  them that could be committed, and every committed row of every caller sharing the database.
  No prompt or answer text is stored.

Errors
------
* ``begin`` raises :class:`LedgerUnavailable` when its row could not be committed (database
  locked beyond the lock timeout, unreachable, disk full, read-only or failing file, ledger
  closed). Nothing was written for it, and the attempt must not be sent (caller_svc.core answers
  with a ``no_backend`` attempt, nothing sent, so the router stops rather than trying every
  backend against the same ledger). The writer keeps running and later writes work once the
  cause is gone.
* A queued ``finish``/``record`` whose transaction fails is kept, logged, and retried (with a
  short backoff, and with every later transaction); ``flush`` waits for it. A row the database
  rejects by itself (a constraint, a trigger), which no retry can fix, is logged at ERROR with its
  values. ``aclose(timeout)`` gives up on rows still unwritable after ``timeout`` and logs each
  one at ERROR, so even then no row disappears silently.
* A task cancelled while waiting in ``begin`` never sends its request: its row is written as
  ``cancelled`` with ``sent = 0`` (or not at all if the write itself failed).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from caller_svc.ledger_ops import AlreadyRated, LedgerUnavailable, RatingRefused, UnknownRequest
from caller_svc.ledger_schema import (
    CANCELLED,
    IN_FLIGHT,
    INTERRUPTED,
    LedgerRow,
    Rated,
    Totals,
)

if TYPE_CHECKING:
    from caller_svc.ledger_pg import PostgresLedger
    from caller_svc.ledger_sqlite import SQLiteLedger

__all__ = [
    "CANCELLED",
    "INTERRUPTED",
    "IN_FLIGHT",
    "AlreadyRated",
    "Ledger",
    "LedgerRow",
    "LedgerUnavailable",
    "Rated",
    "RatingRefused",
    "Totals",
    "UnknownRequest",
    "default_caller_id",
    "is_url",
    "open_ledger",
    "redact",
]

POSTGRES_SCHEMES = ("postgresql", "postgres")
CALLER_ID_ENV = "UNIWIZARD_CALLER_ID"
_CALLER_ID = re.compile(r"[A-Za-z0-9._:@/\[\]-]{1,128}")


class Ledger(Protocol):
    """The async ledger API that the caller uses (see the module doc for the guarantees)."""

    caller_id: str

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
        """Mark this caller's rows left in flight by its previous process (and rows from before
        rows named their caller) as interrupted; returns how many."""
        ...

    async def totals(
        self,
        since: float = 0.0,
        until: float = 0.0,
        *,
        by: str = "backend",
        client: str | None = None,
    ) -> tuple[list[Totals], Totals]:
        """Totals per ``by`` (``backend`` or ``client``) and overall of every caller's rows with
        ``since <= ts < until`` (0: now); ``client``: only that client's rows."""
        ...

    async def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The first ``limit`` rows in id order, as column → value (for tests and tools)."""
        ...

    async def rate(
        self, request_id: str, trace_id: str, score: float, label: str, client: str | None = None
    ) -> Rated:
        """Store a rating beside the attempt that answered ``request_id`` (or, when that is
        empty, ``trace_id``), whichever caller made it, if it was made for ``client`` (when
        given). Raises :class:`UnknownRequest` or :class:`AlreadyRated`."""
        ...

    async def spend(
        self, day_start: float, month_start: float, *, by_client: bool = False
    ) -> dict[str, tuple[float, float]]:
        """USD per backend (``by_client``: per client) since ``day_start`` and since
        ``month_start``, all callers'. Both must be UTC day starts (ValueError otherwise): it is
        read from the per-day totals (``spend_daily``), not from the rows."""
        ...


def default_caller_id(env: Mapping[str, str], hostname: str, pid: int, address: str = "") -> str:
    """This caller's identity in the ledger: ``UNIWIZARD_CALLER_ID`` if set, else
    ``HOST:PORT`` from the host name and the port it is configured to listen on.

    ``HOST:PORT`` is what a restart must keep and two live callers must not share: the same
    caller restarted (same machine or container, same configured address) finds its own rows;
    two callers running at once on one host cannot listen on one port, and callers on different
    hosts or containers differ by host name. A caller told to listen on port 0 has no stable
    address, so it is ``HOST:pid-PID``: unique, but its restart does not find its old rows (give
    it ``UNIWIZARD_CALLER_ID`` for that). Raises ``ValueError`` naming the variable when its
    value is not a short token."""
    explicit = env.get(CALLER_ID_ENV, "").strip()
    if explicit:
        if not _CALLER_ID.fullmatch(explicit):
            raise ValueError(
                f"{CALLER_ID_ENV} must be 1 to 128 letters, digits or . _ - : @ / [ ], got"
                f" {explicit[:40]!r}"
            )
        return explicit
    port = address.rsplit(":", 1)[-1] if ":" in address else ""
    host = hostname or "localhost"
    if port.isdigit() and int(port) != 0:
        return f"{host}:{port}"[:128]
    return f"{host}:pid-{pid}"[:128]


def is_url(target: str) -> bool:
    return "://" in target


def redact(target: str) -> str:
    """``target`` fit for a log line or an error: a URL's password (``user:password@`` or a
    ``password=`` parameter) replaced by ``***``."""
    if not is_url(target):
        return target
    target = re.sub(r"^([a-zA-Z][\w+.-]*://[^:/@?#]*:)[^@/?#]*@", r"\1***@", target)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", target)


async def open_ledger(target: str, *, caller_id: str | None = None) -> Ledger:
    """Open the ledger at ``target``: a SQLite file path, ``:memory:``, or a
    ``postgresql://user:password@host:port/dbname?options`` URL (libpq's syntax).

    Rows are written as ``caller_id`` (default: :func:`default_caller_id` without an address).
    Waits until the database is open and migrated; raises :class:`LedgerUnavailable` if it
    cannot be, and ``ValueError`` for a URL scheme that has no backend."""
    if caller_id is None:
        caller_id = default_caller_id(os.environ, socket.gethostname(), os.getpid())
    ledger: SQLiteLedger | PostgresLedger
    if is_url(target):
        scheme = target.split("://", 1)[0].lower()
        if scheme not in POSTGRES_SCHEMES:
            raise ValueError(
                f"unsupported ledger URL scheme {scheme!r}: give a SQLite file path or a"
                " postgresql:// URL"
            )
        from caller_svc.ledger_pg import PostgresLedger  # psycopg only when asked for

        ledger = PostgresLedger(target, caller_id=caller_id)
    else:
        from caller_svc.ledger_sqlite import SQLiteLedger

        ledger = SQLiteLedger(target, caller_id=caller_id)
    await ledger.ready()
    return ledger
