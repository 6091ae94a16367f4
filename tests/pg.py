"""A real PostgreSQL server for the tests, from PyPI's ``pgserver`` (in the dev extras).

pgserver ships PostgreSQL's own binaries in its wheel: ``initdb`` and ``pg_ctl`` run from there,
on a data directory under the system temp directory, listening on a Unix socket only (no TCP
port to collide with anyone's). Running as root, it runs the server as a system user of its own
(``pgserver``, created once), since PostgreSQL refuses to run as root. One server per test
session (1-2 s to start); each test gets a fresh schema in it (:meth:`TestPostgres.url`).

A session that was killed leaves its server running; the next start stops such leftovers (their
owner process is gone) and removes their data.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

PREFIX = "uniwizard-pg-"


class TestPostgres:
    """A running server: ``url()`` is a fresh schema, ``admin()`` a connection as superuser."""

    __test__ = False  # not a test class

    def __init__(self, server: Any, root: Path) -> None:
        self.server = server
        self.root = root
        self.socket_dir = str(server.get_postmaster_info().socket_dir)

    def base_url(self) -> str:
        return f"postgresql://postgres@/postgres?host={quote(self.socket_dir, safe='/')}"

    def url(self, schema: str | None = None) -> str:
        """A URL whose tables live in ``schema`` (created now; a fresh one by default)."""
        schema = schema or f"t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        return f"{self.base_url()}&options=-csearch_path%3D{schema}"

    def admin(self, url: str | None = None) -> Any:
        import psycopg

        return psycopg.connect(url or self.base_url(), autocommit=True)

    def stop(self) -> None:
        """Stop at once (its data is thrown away: no shutdown checkpoint) and remove it."""
        from pgserver._commands import pg_ctl

        data = self.root / "data"
        try:
            pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=data, user=_owner_name(data))
        except Exception:
            self.server.cleanup()  # pgserver's own way: a clean stop, else kill
        else:  # pgserver's clean-up at exit has nothing left to do
            atexit.unregister(self.server._cleanup)
            type(self.server)._instances.pop(self.server.pgdata, None)
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> TestPostgres:
    """Start a server (raises with the reason if it cannot)."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver
    _stop_leftovers()
    root = Path(tempfile.mkdtemp(prefix=PREFIX))
    (root / "owner").write_text(str(os.getpid()))
    try:
        with _throwaway_settings():
            server = pgserver.get_server(root / "data", cleanup_mode="delete")
    except subprocess.CalledProcessError as exc:
        log = root / "data" / "log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"{exc}; server log:\n{detail}") from exc
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return TestPostgres(server, root)


# The server's data is thrown away after the session: nothing needs to reach the disk. (The
# ledger's own guarantees are about the caller process dying, which these do not weaken.)
THROWAWAY_SETTINGS = "\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"


@contextlib.contextmanager
def _throwaway_settings() -> Iterator[None]:
    """pgserver runs initdb without options: add --no-sync (under a busy disk it is the most
    of the start-up) and write THROWAWAY_SETTINGS before the server starts."""
    from pgserver import postgres_server

    initdb = postgres_server.initdb

    def throwaway_initdb(args: list[str], pgdata: Path | None = None, **kw: Any) -> str:
        out = initdb([*args, "--no-sync"], pgdata=pgdata, **kw)
        assert pgdata is not None
        with open(Path(pgdata) / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(THROWAWAY_SETTINGS)
        return str(out)

    postgres_server.initdb = throwaway_initdb
    try:
        yield
    finally:
        postgres_server.initdb = initdb


def _stop_leftovers() -> None:
    from pgserver._commands import pg_ctl  # the same binaries

    for root in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((root / "owner").read_text())
        except (OSError, ValueError):
            if time.time() - root.stat().st_mtime < 60:  # being set up right now
                continue
            owner = 0
        if owner and _alive(owner):
            continue
        data = root / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=data, user=_owner_name(data))
        shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_name(path: Path) -> str | None:
    import pwd

    if os.geteuid() != 0:
        return None
    return pwd.getpwuid(path.stat().st_uid).pw_name
