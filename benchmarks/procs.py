"""The stack as processes, like ``uniwizard up --sim``, plus /proc readings.

The simulator runs as its own process. The stack runs in one of two modes, side by side if
wanted (each on its own free loopback ports and its own temporary ``UNIWIZARD_DATA_DIR``):

* ``one``: registry, caller and router in one process (``uniwizard serve --target all``, what
  ``uniwizard up`` runs), linked in-process;
* ``split``: each as ``python -m <package>``, linked over gRPC (``uniwizard up --split``); with
  ``callers`` / ``routers`` above 1, that many replicas of each (every router balancing over
  every caller, clients over every router: :attr:`Stack.router_target`), all on one registry,
  the callers on the ledger named by ``ledger`` (a ``postgresql://`` URL to share one).

Placeholder API keys; tracing off (every ``OTEL_*`` variable is removed), as in a default run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from uniwizard.config import dump_config, load_config, rewrite_urls
from uniwizard_sim.urls import base_url

ROOT = Path(__file__).resolve().parent.parent
BACKENDS_YAML = ROOT / "configs" / "backends.yaml"
ROUTING_YAML = ROOT / "configs" / "routing.yaml"
SIM_KEY = "sim-key"
SERVICES = ("registry", "caller", "router")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


# -- /proc ---------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name ([0] is the state); [] if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, in seconds."""
    parts = _stat(pid)
    try:
        return (int(parts[11]) + int(parts[12])) / _TICKS
    except (IndexError, ValueError):
        return 0.0


@dataclass(frozen=True)
class ProcessTree:
    """A process and its children, for a server that forks a process per connection
    (PostgreSQL): a watched value that :class:`benchmarks.run.Load` reads as a whole."""

    pid: int

    def cpu_seconds(self) -> float:
        """CPU time of the process, its live children and the children it has reaped."""
        total = 0.0
        for pid in (self.pid, *self.children()):
            parts = _stat(pid)
            try:  # utime, stime, cutime, cstime
                total += sum(int(parts[i]) for i in (11, 12, 13, 14)) / _TICKS
            except (IndexError, ValueError):
                pass
        return total

    def children(self) -> list[int]:
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                parts = _stat(int(entry))
                if len(parts) > 1 and parts[1] == str(self.pid):
                    kids.append(int(entry))
        return kids


Watched = int | ProcessTree  # a pid, or a process with its children


def watched_cpu(w: Watched) -> float:
    return w.cpu_seconds() if isinstance(w, ProcessTree) else cpu_seconds(w)


def watched_rss(w: Watched) -> int:
    """VmRSS of the process (of a tree, its first process: children share its memory)."""
    return rss_kib(w.pid if isinstance(w, ProcessTree) else w)


# -- readiness -----------------------------------------------------------------------------


# A failed connect puts a gRPC channel into reconnect backoff (1 s, then 1.6x): without these
# options the readiness poll would see a service up to seconds after it started serving.
_FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 50),
]


def wait_serving(target: str, deadline: float) -> bool:
    """Poll grpc.health.v1 Check until SERVING."""
    with grpc.insecure_channel(target, options=_FAST_RECONNECT) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            try:
                resp = stub.Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=0.5, wait_for_ready=True
                )
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.01)
    return False


def wait_http(url: str, deadline: float, headers: dict[str, str] | None = None) -> bool:
    with httpx.Client(trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url, timeout=1.0, headers=headers).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    return False


class StartError(RuntimeError):
    pass


class Simulator:
    """The provider simulator as a process, and the configuration pointing every backend at it."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0
        self.config_path = ""
        self.keys: dict[str, str] = {}

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = load_config(BACKENDS_YAML)
        self.keys = {b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env}
        t0 = time.monotonic()
        log = open(self.workdir / "sim.log", "wb")
        argv = ["-m", "uniwizard_sim", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            env=clean_env(),
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if not wait_http(f"{self.root}/_sim/health", t0 + timeout):
            raise StartError(f"the simulator did not start (see {self.workdir / 'sim.log'})")
        self.ready_s = time.monotonic() - t0
        sim_config = rewrite_urls(config, lambda b: base_url(self.root, b.key, b.provider))
        path = self.workdir / "sim-backends.yaml"
        path.write_text(dump_config(sim_config))
        self.config_path = str(path)

    def stop(self, timeout: float = 15.0) -> int | None:
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None


@dataclass
class Stack:
    """Registry + caller + router (and the HTTP edge) as child processes: one process
    (``mode="one"``, ``uniwizard serve --target all``: the edge in it, linked in-process) or one
    each (``"split"``; the edge as its own process only with ``edge``), on the given simulator.
    The edge listens on a free port either way (``edge_addr``), never on the default one."""

    workdir: Path
    sim: Simulator
    mode: str = "split"
    addrs: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    startup_s: float = 0.0  # spawning the services -> all SERVING
    caller_args: list[str] = field(default_factory=list)  # extra flags (experiments, split)
    ready_s: dict[str, float] = field(default_factory=dict)  # per service, from the spawn
    extra_env: dict[str, str] = field(default_factory=dict)  # experiments
    callers: int = 1  # replicas (split only): caller, caller2, ...
    routers: int = 1  # replicas (split only): router, router2, ...
    ledger: str = ""  # the callers' UNIWIZARD_LEDGER; "" = a SQLite file in the data dir
    edge: bool = False  # split: also run the edge as a process of its own
    edge_addr: str = ""

    def __post_init__(self) -> None:
        if self.mode == "one" and (self.callers, self.routers) != (1, 1):
            raise ValueError("replicas are separate processes: mode='split'")
        if self.callers > 1 and not self.ledger:
            raise ValueError("callers share one ledger: give a postgresql:// URL as ledger")

    @property
    def config_path(self) -> str:
        return self.sim.config_path

    @property
    def names(self) -> list[str]:
        """Every service process, registry first, then callers, then routers (start order)."""
        return ["registry", *_replicas("caller", self.callers), *_replicas("router", self.routers)]

    @property
    def router_target(self) -> str:
        """Where clients go: the router, or every router (a list the client balances over)."""
        return ",".join(self.addrs[n] for n in _replicas("router", self.routers))

    def pid(self, name: str) -> int:
        """The process running ``name`` (registry, caller, router, edge; one pid for all in
        "one")."""
        return self.procs["stack" if self.mode == "one" else name].pid

    def pids(self) -> dict[str, int]:
        """Process name -> pid: {"stack": pid} in one process, else one per service."""
        return {name: p.pid for name, p in self.procs.items()}

    def _spawn(self, name: str, module: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        self.addrs = {name: f"127.0.0.1:{free_port()}" for name in self.names}
        env = clean_env({"UNIWIZARD_DATA_DIR": str(data), **self.sim.keys, **self.extra_env})
        for name in SERVICES:
            env[f"UNIWIZARD_{name.upper()}_ADDR"] = self.addrs[name]
        self.edge_addr = env["UNIWIZARD_HTTP_ADDR"] = f"127.0.0.1:{free_port()}"
        common = ["--config", self.config_path]
        t1 = time.monotonic()
        deadline = t1 + timeout
        if self.mode == "one":
            self._spawn(
                "stack",
                "uniwizard.cli",
                ["serve", "--target", "all", *common, "--policy", str(ROUTING_YAML)],
                env,
            )
        else:
            self._spawn(
                "registry", "registry_svc", [*common, "--address", self.addrs["registry"]], env
            )
            callers = _replicas("caller", self.callers)
            for name in callers:
                caller_env = dict(env)
                if self.ledger:
                    caller_env.update(UNIWIZARD_LEDGER=self.ledger, UNIWIZARD_CALLER_ID=name)
                args = ["--address", self.addrs[name], "--registry", self.addrs["registry"]]
                self._spawn(name, "caller_svc", [*common, *args, *self.caller_args], caller_env)
            for name in _replicas("router", self.routers):
                args = ["--policy", str(ROUTING_YAML), "--address", self.addrs[name]]
                args += ["--registry", self.addrs["registry"]]
                args += ["--caller", ",".join(self.addrs[c] for c in callers)]
                self._spawn(name, "router_svc", [*common, *args], env)
        for name in self.names:
            if not wait_serving(self.addrs[name], deadline):
                proc = self.procs["stack" if self.mode == "one" else name]
                code = proc.poll()
                raise StartError(
                    f"{name}_svc did not become ready"
                    + (f" (exited with {code})" if code is not None else "")
                    + f"; see {self.workdir}/*.log"
                )
            self.ready_s[name] = time.monotonic() - t1
        if self.mode == "split" and self.edge:
            self._spawn(
                "edge",
                "edge_svc",
                ["--address", self.edge_addr, "--router", self.addrs["router"]],
                env,
            )
        if self.mode == "one" or self.edge:
            if not wait_http(f"http://{self.edge_addr}/health", deadline):
                raise StartError(f"the HTTP edge did not become ready; see {self.workdir}/*.log")
            self.ready_s["edge"] = time.monotonic() - t1
        self.startup_s = time.monotonic() - t1

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise StartError(f"{name} exited with {p.returncode}; see {name}.log")

    def rss(self) -> dict[str, int]:
        return {name: rss_kib(p.pid) for name, p in self.procs.items()}

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(p.pid) for name, p in self.procs.items()}

    def stop(self, timeout: float = 15.0) -> dict[str, int | None]:
        """SIGTERM in up's order (edge, routers, callers, registry); exit codes."""
        order = ["stack", "edge", *reversed(self.names)]
        for name in order:
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for name in order:
            p = self.procs.get(name)
            if p is None:
                continue
            try:
                codes[name] = p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                codes[name] = None
        return codes


def _replicas(service: str, n: int) -> list[str]:
    """The process names of ``n`` replicas: caller, caller2, caller3, ..."""
    return [service, *(f"{service}{i}" for i in range(2, n + 1))]
