#!/usr/bin/env python3
"""Soak: mixed tasks at a steady rate while the simulator injects faults and the caller and the
registry are killed (SIGKILL) and restarted.

    python scripts/soak.py --duration 300 --rate 20          # the long version
    python scripts/soak.py --duration 20 --rate 8 --check    # the short version CI runs

Checks, printed as a table (and asserted with --check):
* every request ends in an answer or a typed error within its deadline (+1 s slack);
* the services recover by themselves: after the chaos stops, a dispatch succeeds again;
* memory stays flat: the router's RSS (never restarted) grows by less than --max-growth-mb;
* the ledger has exactly one row per attempt the simulator saw.
Only loopback addresses are used; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import httpx
from grpc_status import rpc_status

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uniwizard.config import dump_config, load_config, rewrite_urls  # noqa: E402
from uniwizard.convert import outcome_from_pb, task_to_pb  # noqa: E402
from uniwizard.types import BlindRequest, Message, Role, Task  # noqa: E402
from uniwizard.v1 import router_pb2, router_pb2_grpc  # noqa: E402
from uniwizard_sim.urls import base_url  # noqa: E402

TASKS = [
    "Read the file notes/todo.md and tell me what's on it",
    "What's the status of the nightly backup job?",
    "Review this pull request diff for race conditions: + lock.acquire()",
    "Analyze the trade-offs between event sourcing and CRUD for our inventory service",
    "Generate the full CRUD boilerplate for these 12 Django models",
    "Who was the first emperor of Rome?",
    "Summarize this article in three bullet points: The council met on Tuesday.",
    "Quick — one word: capital of Peru?",
]
FAULTS = [
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 429, "retry_after": 1},
    {"kind": "reset"},
    {"kind": "hang"},
    {"kind": "delay", "seconds": 1.0},
    {"kind": "malformed_chunk"},
    {"kind": "refusal_text"},
    {"kind": "empty"},
    {"kind": "cut", "after_chunks": 2},
]
TARGETS = ["local", "claude", "kimi", "gpt", "gemini", "grok"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.name,
            *self.args,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if b"serving" not in line and b"listening" not in line:
            raise RuntimeError(f"{self.name} did not start: {line!r}")
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.read(65536):
            pass

    async def kill_and_restart(self, pause: float) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await asyncio.sleep(pause)
        await self.start()
        self.restarts += 1

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


@dataclass
class Results:
    outcomes: Counter[str] = field(default_factory=Counter)
    late: list[float] = field(default_factory=list)
    requests: int = 0
    untyped: list[str] = field(default_factory=list)


async def one_request(
    stub: router_pb2_grpc.RouterStub, text: str, deadline: float, stream: bool, results: Results
) -> None:
    task = Task(request=BlindRequest(messages=(Message(Role.USER, text),)))
    req = router_pb2.DispatchRequest(task=task_to_pb(task))
    started = time.monotonic()
    try:
        if stream:
            backend = ""
            async for ev in stub.DispatchStream(req, timeout=deadline):
                if ev.WhichOneof("event") == "done":
                    backend = ev.done.backend
            results.outcomes[f"answer ({backend})" if backend else "stream without done"] += 1
        else:
            result = await stub.Dispatch(req, timeout=deadline)
            results.outcomes[f"answer ({result.backend})"] += 1
    except grpc.aio.AioRpcError as exc:
        status = rpc_status.from_call(exc)
        failure = router_pb2.DispatchFailure()
        if status is not None and status.details and status.details[0].Unpack(failure):
            outcome = outcome_from_pb(failure.outcome)
            results.outcomes[f"error: {outcome.value if outcome else '?'}"] += 1
        elif exc.code() in (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.INVALID_ARGUMENT,
        ):
            results.outcomes[f"error: grpc {exc.code().name.lower()}"] += 1
        else:
            results.untyped.append(f"{exc.code().name}: {exc.details()}")
    took = time.monotonic() - started
    if took > deadline + 1.0:
        results.late.append(took)


async def soak(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="uniwizard-soak-"))
    ports = {n: free_port() for n in ("sim", "registry", "caller", "router")}
    addr = {n: f"127.0.0.1:{p}" for n, p in ports.items()}
    env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp))
    sim_root = f"http://{addr['sim']}"
    config = rewrite_urls(
        load_config(ROOT / "configs" / "backends.yaml"),
        lambda b: base_url(sim_root, b.key, b.provider),
    )
    config = replace(
        config,
        backends={
            k: replace(
                b,
                timeout=3.0,
                first_token_timeout=2.0,
                stream_idle_timeout=1.0,
                cooldown_time=3.0,
            )
            for k, b in config.backends.items()
        },
    )
    cfg_path = tmp / "backends.yaml"
    cfg_path.write_text(dump_config(config))
    env.update({b.api_key_env: "soak-key" for b in config.backends.values() if b.api_key_env})
    ledger = tmp / "ledger.db"
    common = ["--config", str(cfg_path)]
    services = {
        "sim": Service("uniwizard_sim", ["--host", "127.0.0.1", "--port", str(ports["sim"])], env),
        "registry": Service(
            "registry_svc",
            [*common, "--address", addr["registry"], "--state", str(tmp / "ops.json")],
            env,
        ),
        "caller": Service(
            "caller_svc",
            [
                *common,
                "--address",
                addr["caller"],
                "--registry",
                addr["registry"],
                "--ledger",
                str(ledger),
            ],
            env,
        ),
        "router": Service(
            "router_svc",
            [
                *common,
                "--address",
                addr["router"],
                "--registry",
                addr["registry"],
                "--caller",
                addr["caller"],
            ],
            env,
        ),
    }
    for s in services.values():
        await s.start()
    results = Results()
    http = httpx.AsyncClient(base_url=sim_root, timeout=10)
    channel = grpc.aio.insecure_channel(addr["router"])
    stub = router_pb2_grpc.RouterStub(channel)
    rng = random.Random(args.seed)
    router_pid = services["router"].proc.pid  # type: ignore[union-attr]
    try:
        await one_request(stub, TASKS[0], args.deadline, False, Results())  # warm up
        rss_start = {n: rss_mb(s.proc.pid) for n, s in services.items()}  # type: ignore[union-attr]
        end = time.monotonic() + args.duration
        inflight: set[asyncio.Task[None]] = set()

        async def chaos() -> None:
            next_fault = time.monotonic()
            next_kill = {
                "caller": time.monotonic() + args.kill_every * 0.4,
                "registry": time.monotonic() + args.kill_every * 0.8,
            }
            while time.monotonic() < end - 2:
                now = time.monotonic()
                if now >= next_fault:
                    await http.post(
                        "/_sim/faults",
                        json={
                            "target": rng.choice(TARGETS),
                            "fault": rng.choice(FAULTS),
                            "times": rng.randint(1, 4),
                        },
                    )
                    next_fault = now + args.fault_every
                for name, at in next_kill.items():
                    if now >= at:
                        await services[name].kill_and_restart(0.3)
                        next_kill[name] = now + args.kill_every
                await asyncio.sleep(0.1)

        chaos_task = asyncio.create_task(chaos())
        interval = 1.0 / args.rate
        tick = time.monotonic()
        while time.monotonic() < end:
            if len(inflight) < args.max_inflight:
                t = asyncio.create_task(
                    one_request(
                        stub, rng.choice(TASKS), args.deadline, rng.random() < 0.25, results
                    )
                )
                inflight.add(t)
                t.add_done_callback(inflight.discard)
                results.requests += 1
            tick += interval
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
        await chaos_task
        if inflight:
            await asyncio.wait(inflight, timeout=args.deadline + 5)
        # Recovery: no more faults; a dispatch must succeed again by itself.
        await http.delete("/_sim/faults")
        recovered_after = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            probe = Results()
            await one_request(stub, TASKS[5], args.deadline, False, probe)
            if any(k.startswith("answer") for k in probe.outcomes):
                recovered_after = time.monotonic() - t0
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(0.5)
        rss_end = {n: rss_mb(s.proc.pid) for n, s in services.items()}  # type: ignore[union-attr]
        seen = (await http.get("/_sim/requests")).json()["requests"]
        sim_attempts = sum(1 for r in seen if not r["path"].endswith("/models"))
    finally:
        await channel.close()
        await http.aclose()
        exits = {n: await services[n].stop() for n in ("router", "caller", "registry", "sim")}
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT COUNT(*) FROM attempts WHERE sent = 1").fetchone()[0]
        interrupted = db.execute(
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'interrupted'"
        ).fetchone()[0]
    return {
        "duration_s": args.duration,
        "rate_per_s": args.rate,
        "requests": results.requests,
        "answered": sum(v for k, v in results.outcomes.items() if k.startswith("answer")),
        "outcomes": dict(sorted(results.outcomes.items())),
        "untyped_errors": results.untyped[:10],
        "late": len(results.late),
        "caller_restarts": services["caller"].restarts,
        "registry_restarts": services["registry"].restarts,
        "recovered_after_s": None if recovered_after is None else round(recovered_after, 2),
        "router_rss_mb": [round(rss_start["router"], 1), round(rss_end["router"], 1)],
        "rss_start_mb": {k: round(v, 1) for k, v in rss_start.items()},
        "rss_end_mb": {k: round(v, 1) for k, v in rss_end.items()},
        "ledger_rows_sent": rows,
        "ledger_rows_interrupted": interrupted,
        "simulator_attempts": sim_attempts,
        "exit_codes": exits,
        "router_pid": router_pid,
    }


def report(r: dict[str, object]) -> str:
    lines = ["| measure | value |", "|---|---|"]
    for k in (
        "duration_s",
        "rate_per_s",
        "requests",
        "answered",
        "late",
        "caller_restarts",
        "registry_restarts",
        "recovered_after_s",
        "router_rss_mb",
        "rss_start_mb",
        "rss_end_mb",
        "ledger_rows_sent",
        "ledger_rows_interrupted",
        "simulator_attempts",
        "exit_codes",
    ):
        lines.append(f"| {k} | {r[k]} |")
    lines.append("")
    lines.append("| outcome | requests |")
    lines.append("|---|---|")
    for k, v in r["outcomes"].items():  # type: ignore[attr-defined]
        lines.append(f"| {k} | {v} |")
    return "\n".join(lines)


def failures(r: dict[str, object], max_growth_mb: float) -> list[str]:
    problems = []
    if r["untyped_errors"]:
        problems.append(f"untyped errors: {r['untyped_errors']}")
    if r["late"]:
        problems.append(f"{r['late']} requests ended after their deadline")
    if r["recovered_after_s"] is None:
        problems.append("the stack did not recover after the chaos stopped")
    start, end = r["router_rss_mb"]  # type: ignore[misc]
    if end - start > max_growth_mb:
        problems.append(f"router memory grew {end - start:.1f} MB (> {max_growth_mb} MB)")
    if r["ledger_rows_sent"] != r["simulator_attempts"]:
        problems.append(
            f"ledger rows {r['ledger_rows_sent']} != simulator attempts {r['simulator_attempts']}"
        )
    if not r["caller_restarts"] or not r["registry_restarts"]:
        problems.append("the caller and the registry were not both restarted")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--deadline", type=float, default=8.0, help="per-request deadline, s")
    p.add_argument("--max-inflight", type=int, default=64)
    p.add_argument("--fault-every", type=float, default=2.0, help="seconds between faults")
    p.add_argument(
        "--kill-every",
        type=float,
        default=30.0,
        help="seconds between kills of each of caller and registry",
    )
    p.add_argument("--max-growth-mb", type=float, default=40.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--check", action="store_true", help="exit 1 when a check fails")
    args = p.parse_args()
    args.kill_every = min(args.kill_every, args.duration / 1.5)
    r = asyncio.run(soak(args))
    print(report(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    problems = failures(r, args.max_growth_mb)
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
