"""Replicas as real processes: ``python -m registry_svc|caller_svc|router_svc`` on loopback, each
printing "<name> serving on HOST:PORT" when ready, its log in the test's directory. The provider
simulator runs in the test's own process (``running_simulator``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.stack import ROOT, SIM_KEY, sim_config, v1_policy
from uniwizard.config import load_config
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
    procs: list[Proc] = field(default_factory=list)

    def _proc(self, name: str, module: str, args: list[str]) -> Proc:
        p = Proc(name, module, ["--config", self.config_path, *args], self.env, self.tmp)
        self.procs.append(p)
        return p

    def registry(self, address: str) -> Proc:
        state = str(self.tmp / "ops.json")
        return self._proc(
            "registry", "registry_svc", ["--address", address, "--state", state, "--no-probes"]
        )

    def caller(self, index: int, registry: str) -> Proc:
        return self._proc(
            f"caller{index}",
            "caller_svc",
            [
                "--address",
                "127.0.0.1:0",
                "--registry",
                registry,
                "--ledger",
                str(self.ledger(index)),
            ],
        )

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

    def ledger_rows(self, index: int, where: str = "1") -> int:
        """Rows of caller ``index``'s own ledger (WAL: readable while the caller runs)."""
        with sqlite3.connect(self.ledger(index), timeout=5) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM attempts WHERE {where}").fetchone()[0])

    def provider_attempts(self) -> int:
        """Completion requests the simulator received (probes and model listings excluded)."""
        return sum(1 for r in self.sim.requests() if not r["path"].endswith("/models"))


@asynccontextmanager
async def cluster(tmp: Path) -> AsyncIterator[Cluster]:
    """The simulator and an empty cluster; every process started in it is stopped at the end
    (SIGTERM, so a failing test leaves none behind)."""
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(UNIWIZARD_DATA_DIR=str(tmp), PYTHONUNBUFFERED="1")
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        load_config(path)  # fail here, not in five children
        c = Cluster(sim, tmp, path, str(v1_policy(tmp)), env)
        try:
            yield c
        finally:
            await asyncio.gather(*(p.stop() for p in reversed(c.procs)))
