"""Replicas on one machine: ``python -m benchmarks.replicas [--smoke] [--rounds N] [--out DIR]``.

Throughput of Dispatch at concurrency 64 through one router over 1, 2 and 3 callers, and
through 2 routers over 3 callers (the client balancing over both, as ``uniwizard_client`` does),
every setup its own registry and its own processes, the callers sharing one PostgreSQL ledger
per setup (a schema each in one server); and the 1-caller stack on its default SQLite ledger as
the baseline. Each setup is a :class:`benchmarks.procs.Stack` started side by side with the
others; the load generator (``benchmarks.load``, a process of its own) drives one setup at a
time, in rounds whose order alternates (so the machine's drift touches all alike), and the
median round is reported: req/s, p50/p99, errors, and CPU ms per request of every process,
PostgreSQL's included (the server and its per-connection children).

PostgreSQL comes from PyPI's pgserver, started as the tests start it (``tests/pg.py``) but with
PostgreSQL's own durable settings (fsync and synchronous_commit on), as a deployment has them.

Prints the table and writes ``DIR/replicas.md`` and ``DIR/replicas.json``. ``--smoke`` (what
``tests/bench/test_bench_replicas_smoke.py`` runs) is two setups, a few requests each.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import ROOT, ProcessTree, Simulator, Stack, StartError, Watched
from benchmarks.run import (
    BACKEND,
    DISPATCH_TEXT,
    Load,
    Sizes,
    level,
    loadavg,
    log,
    machine,
    md_table,
)

CONCURRENCY = 64
ROUNDS = 3


@dataclass(frozen=True)
class Setup:
    key: str
    label: str
    callers: int
    routers: int
    postgres: bool = True

    @property
    def ledger(self) -> str:
        return "PostgreSQL" if self.postgres else "SQLite"

    @property
    def schema(self) -> str:
        """The setup's schema in the PostgreSQL server."""
        return "bench_" + self.key.replace("-", "_")


SETUPS = (
    Setup("sqlite-1", "1 router, 1 caller", 1, 1, postgres=False),
    Setup("pg-1", "1 router, 1 caller", 1, 1),
    Setup("pg-2", "1 router, 2 callers", 2, 1),
    Setup("pg-3", "1 router, 3 callers", 3, 1),
    Setup("pg-3x2", "2 routers, 3 callers", 3, 2),
)
SMOKE_SETUPS = (SETUPS[0], Setup("pg-2x2", "2 routers, 2 callers", 2, 2))

FULL = Sizes("full", 0, 0, 0, 0, 0, (CONCURRENCY,), 5.0, 1.0)
SMOKE = Sizes("smoke", 0, 0, 0, 0, 0, (4,), 2.0, 0.5, max_requests=8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.replicas", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="two setups, a few requests (tests)")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="measurements per setup (the median)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--keep", action="store_true", help="keep the temporary dir (logs, data)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds: at least 1")
    setups = SMOKE_SETUPS if args.smoke else SETUPS
    sizes = SMOKE if args.smoke else FULL
    rounds = 1 if args.smoke else args.rounds
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="uniwizard-bench-replicas-"))
    log(f"working directory {tmp}")
    try:
        results = measure(setups, sizes, rounds, tmp)
    except StartError as exc:
        log(f"error: {exc}")
        for f in sorted(tmp.rglob("*.log")):
            log(f"--- {f.relative_to(tmp)} ---\n" + f.read_text(errors="replace")[-2000:])
        return 1
    table = render(results)
    print(table, flush=True)
    (out / "replicas.md").write_text(markdown(results, table))
    (out / "replicas.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out / 'replicas.md'}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def measure(setups: tuple[Setup, ...], sizes: Sizes, rounds: int, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "sizes": sizes.name,
        "machine": machine(),
        "concurrency": sizes.levels[0],
        "rounds": rounds,
        "setups": {},
    }
    sim = Simulator(tmp / "sim")
    server = None
    stacks: dict[str, Stack] = {}
    try:
        log("starting the simulator")
        sim.start()
        if any(s.postgres for s in setups):
            log("starting PostgreSQL (pgserver, durable settings)")
            server = start_postgres()
        for s in setups:
            log(f"starting {s.label} on {s.ledger}")
            ledger = server.url(s.schema) if s.postgres and server else ""
            stack = Stack(
                tmp / s.key, sim, "split", callers=s.callers, routers=s.routers, ledger=ledger
            )
            stack.start()
            stacks[s.key] = stack
        time.sleep(1.0)
        results["loadavg_before_load"] = loadavg()
        load = Load(tmp)
        rows: dict[str, list[dict[str, Any]]] = {s.key: [] for s in setups}
        for r in range(rounds):
            for s in setups if r % 2 == 0 else reversed(setups):
                log(f"round {r + 1}/{rounds}: {s.label}, {s.ledger}")
                stack = stacks[s.key]
                watch: dict[str, Watched] = {**stack.pids(), "sim": sim.pid}
                if s.postgres and server is not None:
                    watch["postgres"] = ProcessTree(server.pid)
                row, _ = level(load, dispatch_spec(stack), watch, sizes.levels[0], sizes)
                rows[s.key].append(row)
        for stack in stacks.values():
            stack.check_alive()
        for s in setups:
            spread = caller_shares(server, s) if s.postgres and server else {}
            results["setups"][s.key] = {
                "label": s.label,
                "ledger": s.ledger,
                "callers": s.callers,
                "routers": s.routers,
                "rounds": rows[s.key],
                "median": median_row(rows[s.key]),
                "caller_shares": spread,
            }
    finally:
        results["exit_codes"] = {key: stack.stop() for key, stack in stacks.items()}
        sim.stop()
        if server is not None:
            server.stop()
    return results


def start_postgres() -> Any:
    """The test PostgreSQL server with durable settings (tests/pg.py)."""
    from tests import pg

    try:
        return pg.start(durable=True)
    except Exception as exc:
        raise StartError(f"cannot start PostgreSQL (pgserver): {exc}") from exc


def dispatch_spec(stack: Stack) -> dict[str, Any]:
    return {
        "kind": "dispatch",
        "name": "dispatch",
        "address": stack.router_target,
        "text": DISPATCH_TEXT,
        "expect_backend": BACKEND,
        "balanced": True,  # the client's channel: round robin over every router it names
    }


def caller_shares(server: Any, s: Setup) -> dict[str, float]:
    """Each caller's share of the setup's ledger rows (how the routers spread the attempts)."""
    with server.admin(server.url(s.schema)) as conn:
        sql = "SELECT caller_id, COUNT(*) FROM attempts GROUP BY caller_id"
        rows = conn.execute(sql).fetchall()
    total = sum(n for _, n in rows) or 1
    return {str(c): n / total for c, n in sorted(rows)}


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median req/s (its latencies and CPU go with it); errors of all."""
    ordered = sorted(rows, key=lambda x: x["rps"])
    mid = ordered[(len(ordered) - 1) // 2]
    return {
        **mid,
        "errors": sum(x["errors"] for x in rows),
        "requests": sum(x["requests"] for x in rows),
        "rps_range": [ordered[0]["rps"], ordered[-1]["rps"]],
    }


# -- output ----------------------------------------------------------------------------------

STACK_ROLES = ("router", "caller", "registry", "postgres")


def cpu_by_role(cpu: dict[str, float]) -> dict[str, list[float]]:
    """CPU ms per request grouped by role: router, router2 → router; postgres; sim; loadgen."""
    roles: dict[str, list[float]] = {}
    for name, ms in cpu.items():
        roles.setdefault(name.rstrip("0123456789"), []).append(ms)
    return roles


def stack_cpu_ms(cpu: dict[str, float]) -> float:
    """CPU ms per request of everything a deployment runs (not the simulator or the client)."""
    return sum(sum(v) for role, v in cpu_by_role(cpu).items() if role in STACK_ROLES)


def render(results: dict[str, Any]) -> str:
    rows = []
    for r in results["setups"].values():
        m = r["median"]
        roles = cpu_by_role(m["cpu_ms_per_req"])
        stack = stack_cpu_ms(m["cpu_ms_per_req"])
        lo, hi = m["rps_range"]
        rows.append(
            (
                r["label"],
                r["ledger"],
                f"{m['rps']:.0f}" + (f" ({lo:.0f}–{hi:.0f})" if len(r["rounds"]) > 1 else ""),
                f"{m['p50']:.0f} / {m['p99']:.0f} ms",
                f"{m['errors']} of {m['requests']}",
                _ms(roles.get("router")),
                _ms(roles.get("caller")),
                _ms(roles.get("registry")),
                _ms(roles.get("postgres")),
                f"{stack:.2f}",
                f"{1000.0 / stack:.0f}" if stack > 0 else "n/a",
                _ms(roles.get("sim")),
                _ms(roles.get("loadgen")),
            )
        )
    head = (
        "setup",
        "ledger",
        "req/s (range)",
        "p50 / p99",
        "errors",
        "router",
        "caller",
        "registry",
        "PostgreSQL",
        "stack total",
        "req/s per core",
        "simulator",
        "load gen.",
    )
    c = results["concurrency"]
    lines = [
        f"Dispatch at concurrency {c}, median of {results['rounds']} round(s); CPU: ms of each"
        " process's CPU time per request the setup served (replicas joined by +); req/s per"
        " core = 1000 / stack total:",
        "",
        md_table(head, rows),
    ]
    shares = [
        f"{r['label']}: "
        + ", ".join(f"{caller} {100 * share:.0f}%" for caller, share in r["caller_shares"].items())
        for r in results["setups"].values()
        if r["caller_shares"]
    ]
    if shares:
        lines += ["", "Attempts per caller (ledger rows): " + "; ".join(shares)]
    codes = ", ".join(
        f"{key}: " + " ".join(str(v) for v in c.values())
        for key, c in results.get("exit_codes", {}).items()
    )
    lines += ["", f"exit codes on SIGTERM: {codes}"]
    return "\n".join(lines)


def _ms(values: list[float] | None) -> str:
    if not values:
        return ""
    return " + ".join(f"{v:.2f}" for v in values if not math.isnan(v))


def markdown(results: dict[str, Any], table: str) -> str:
    m = results["machine"]
    per_core = [
        1000.0 / stack_cpu_ms(r["median"]["cpu_ms_per_req"])
        for r in results["setups"].values()
        if r["ledger"] == "PostgreSQL"
    ]
    flags = " --smoke" if results["sizes"] == "smoke" else ""
    if not flags and results["rounds"] != ROUNDS:
        flags = f" --rounds {results['rounds']}"
    lines = [
        "# Replicas on one machine",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}; {m['platform']}",
        f"- load average at the start: {m['loadavg_at_start']}, before the load:"
        f" {results.get('loadavg_before_load', '?')} (other work on the machine skews every"
        " figure)",
        f"- `python -m benchmarks.replicas{flags}`:"
        f" every setup started side by side, each measured {results['rounds']} time(s) in"
        " alternating order, the median round shown",
        "- every process (simulator, every setup, PostgreSQL, the load generator) shares the"
        f" same {m['cores']} cores; tracing off",
        "- PostgreSQL: pgserver's binaries (as the tests start them) with PostgreSQL's default,"
        " durable settings (fsync, synchronous_commit on), one schema per setup; SQLite: the"
        " caller's default ledger file (WAL, synchronous=NORMAL)",
        "",
        table,
        "",
        "## Reading it",
        "",
        f"On {m['cores']} cores shared by every process, more replicas cannot add throughput:"
        " every process competes for the same cores, and each replica adds CPU per request (the"
        " stack total): a caller that serves a third of the requests has less to batch (its"
        " ledger group commits, its outcome reports to the registry), and every process has its"
        " own event loop, gRPC connections and health checks to keep. The point here is the"
        " shape and zero errors; how the calls spread over the callers is the line of attempts"
        " per caller. Other work on the machine moves single rounds a lot (the range).",
        "",
        "Per core: 'stack total' is the CPU one request costs the deployment (routers,"
        " callers, registry and PostgreSQL; not the simulator, which stands in for the"
        " providers, nor the load generator, which stands in for the clients). Given cores of"
        " its own, a setup would serve about 1000 / stack total req/s per core"
        + (
            f" ({min(per_core):.0f}–{max(per_core):.0f} req/s per core on PostgreSQL here)"
            if per_core
            else ""
        )
        + ", as long as the providers and the ledger's database keep up.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
