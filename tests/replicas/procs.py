"""Replicas as real processes: ``python -m registry_svc|caller_svc|router_svc`` on loopback, each
printing "<name> serving on HOST:PORT" when ready, its log in the test's directory. The provider
simulator runs in the test's own process (``running_simulator``).

Callers keep their ledger in a SQLite file each, or, given a ``postgresql://`` URL, all in that
one database, each caller under its own ``UNIWIZARD_CALLER_ID`` (``caller0``, ``caller1``, ...).
:class:`Load` drives requests through clients and keeps how each one ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from tests.stack import ROOT, SIM_KEY, sim_config, v1_policy
from uniwizard.config import load_config
from uniwizard_client import AsyncBackendRouter, AttemptInfo, RouterError, Task
from uniwizard_sim.app import RunningSimulator, running_simulator

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """One service process; ``target`` is where it serves once started."""

    name: str  # e.g. caller2: its log is <tmp>/<name>.log
    module: str
    args: list[str]
    env: dict[str, str]
    logs: Path
    target: str = ""
    proc: asyncio.subprocess.Process | None = None
    _drain: asyncio.Task[None] | None = None

    async def start(self) -> Proc:
        log = open(self.logs / f"{self.name}.log", "ab")  # the child writes to it
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                *self.args,
                env=self.env,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        try:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT_S)).decode()
        except TimeoutError:
            line = ""
        if " serving on " not in line:
            self.proc.kill()
            await self.proc.wait()
            log_text = (self.logs / f"{self.name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{log_text}")
        self.target = line.rsplit(" ", 1)[-1].strip()
        self._drain = asyncio.create_task(self._read_rest())
        return self

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.read(65536):
            pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no drain, no flush, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM, then its exit code (SIGKILL after 20 s)."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


@dataclass
class Cluster:
    """A registry, callers and routers as processes, sharing one simulator configuration."""

    sim: RunningSimulator
    tmp: Path
    config_path: str
    policy_path: str
    env: dict[str, str]
    ledger_url: str = ""  # a postgresql:// URL every caller shares; "" = a SQLite file each
    procs: list[Proc] = field(default_factory=list)

    def _proc(
        self, name: str, module: str, args: list[str], env: dict[str, str] | None = None
    ) -> Proc:
        env = {**self.env, **(env or {})}
        p = Proc(name, module, ["--config", self.config_path, *args], env, self.tmp)
        self.procs.append(p)
        return p

    def registry(self, address: str) -> Proc:
        state = str(self.tmp / "ops.json")
        return self._proc(
            "registry", "registry_svc", ["--address", address, "--state", state, "--no-probes"]
        )

    def caller(self, index: int, registry: str) -> Proc:
        """Caller ``index``: its rows are ``caller{index}``'s in the shared ledger, else in a
        file of its own (:meth:`ledger`). Started again, it finds its own rows."""
        name = f"caller{index}"
        ledger = self.ledger_url or str(self.ledger(index))
        args = ["--address", "127.0.0.1:0", "--registry", registry, "--ledger", ledger]
        return self._proc(name, "caller_svc", args, {"UNIWIZARD_CALLER_ID": name})

    def router(self, index: int, registry: str, callers: str) -> Proc:
        return self._proc(
            f"router{index}",
            "router_svc",
            [
                "--policy",
                self.policy_path,
                "--address",
                "127.0.0.1:0",
                "--registry",
                registry,
                "--caller",
                callers,
            ],
        )

    def ledger(self, index: int) -> Path:
        return self.tmp / f"ledger-caller{index}.db"

    def ledger_rows(self, index: int, where: str = "1 = 1") -> int:
        """Committed rows of caller ``index`` (its own file is readable while it runs: WAL)."""
        if self.ledger_url:
            sql = f"SELECT COUNT(*) FROM attempts WHERE caller_id = 'caller{index}' AND ({where})"
            return int(self.shared_ledger(sql)[0][0])
        with sqlite3.connect(self.ledger(index), timeout=5) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM attempts WHERE {where}").fetchone()[0])

    def shared_ledger(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows ``sql`` selects from the shared PostgreSQL ledger (committed rows)."""
        assert self.ledger_url, "the callers have a ledger each: no shared ledger"
        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]

    def provider_attempts(self) -> int:
        """Completion requests the simulator received (probes and model listings excluded)."""
        return sum(1 for r in self.sim.requests() if not r["path"].endswith("/models"))


@asynccontextmanager
async def cluster(tmp: Path, *, ledger_url: str = "") -> AsyncIterator[Cluster]:
    """The simulator and an empty cluster (callers sharing the ledger at ``ledger_url`` if
    given); every process started in it is stopped at the end (SIGTERM, so a failing test leaves
    none behind)."""
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(UNIWIZARD_DATA_DIR=str(tmp), PYTHONUNBUFFERED="1")
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        load_config(path)  # fail here, not in five children
        c = Cluster(sim, tmp, path, str(v1_policy(tmp)), env, ledger_url)
        try:
            yield c
        finally:
            await asyncio.gather(*(p.stop() for p in reversed(c.procs)))


# -- load ------------------------------------------------------------------------------------

ROME = "Who was the first emperor of Rome?"  # knowledge: gpt first
DEADLINE_S = 10.0
# What a request may end in besides an answer: the router's typed failures, and the channel's
# own (no router reachable, the deadline passed).
TYPED = {
    "bad_request", "timeout", "network", "overloaded", "server_error", "rate_limited",
    "no_backend", "refusal", "empty", "truncated", "malformed", "unavailable", "cancelled",
}  # fmt: skip


@dataclass(frozen=True)
class Ended:
    """How one request ended: ``end`` is "answer", an outcome class, or "untyped"."""

    request_id: str
    started: float  # time.monotonic()
    took: float
    end: str
    attempts: tuple[AttemptInfo, ...] = ()  # as the router reported them
    cost_usd: float = 0.0  # the answer's (every attempt's) cost; 0 for a failure
    reported: bool = False  # an answer, or a failure the router explained (its attempts known)


class Load:
    """Requests through clients (taken in turn), each with its own request id, whose number is
    in its text too (so the simulator's record of a provider request names its request)."""

    def __init__(self, *clients: AsyncBackendRouter, prefix: str = "q"):
        self.clients = clients
        self.prefix = prefix
        self.ended: list[Ended] = []
        self.untyped: list[str] = []
        self._sent = 0

    @staticmethod
    def text(request_id: str) -> str:
        return f"{ROME} (question {request_id})"

    ID_IN_TEXT = re.compile(r"\(question ([A-Za-z0-9_-]+)\)")

    async def one(self, client: AsyncBackendRouter | None = None) -> None:
        n, self._sent = self._sent, self._sent + 1
        client = client or self.clients[n % len(self.clients)]
        rid = f"{self.prefix}{n}"
        started = time.monotonic()
        try:
            r = await client.dispatch(Task(self.text(rid), request_id=rid), deadline=DEADLINE_S)
            ended = Ended(rid, started, 0.0, "answer", r.attempts, r.cost_usd, True)
        except RouterError as err:
            ended = Ended(rid, started, 0.0, err.outcome, err.attempts, 0.0, err.reported)
            if err.outcome not in TYPED:
                self.untyped.append(str(err))
        except Exception as exc:  # anything else is a failure of the contract
            ended = Ended(rid, started, 0.0, "untyped")
            self.untyped.append(repr(exc))
        self.ended.append(replace(ended, took=time.monotonic() - started))

    async def run(self, seconds: float, concurrency: int) -> None:
        """``concurrency`` workers sending back to back for ``seconds``, spread over the
        clients."""
        stop = time.monotonic() + seconds

        async def worker(client: AsyncBackendRouter) -> None:
            while time.monotonic() < stop:
                await self.one(client)

        await asyncio.gather(
            *(worker(self.clients[i % len(self.clients)]) for i in range(concurrency))
        )

    def ends(self, after: float = 0.0) -> Counter[str]:
        """How the requests started after ``after`` (monotonic) ended."""
        return Counter(e.end for e in self.ended if e.started > after)

    def late(self) -> list[float]:
        return [e.took for e in self.ended if e.took > DEADLINE_S + 1.0]

    def by_id(self) -> dict[str, Ended]:
        return {e.request_id: e for e in self.ended}


def sim_requests_per_request(sim: RunningSimulator) -> Counter[str]:
    """Completion requests the simulator received, per request id (:meth:`Load.text` puts the
    id in the prompt); model listings are not completions."""
    seen: Counter[str] = Counter()
    for r in sim.requests():
        if r["path"].endswith("/models"):
            continue
        ids = set(Load.ID_IN_TEXT.findall(json.dumps(r["body"])))
        assert len(ids) == 1, f"a provider request names {sorted(ids)}: {r['path']}"
        seen[ids.pop()] += 1
    return seen
