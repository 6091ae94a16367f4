"""The HTTP edge against the LiteLLM proxy: the same OpenAI protocol, the same request, side by side
in one run. ``python -m benchmarks.edge``.

    python -m benchmarks.edge [--quick | --smoke] [--split] [--no-litellm] [--out DIR]

Starts the simulator and the stack with its edge as ``uniwizard up`` runs them — one process,
the edge linked to the router in-process (``--split``: registry, caller, router and the edge as
four processes over gRPC) — on free loopback ports, and the LiteLLM proxy (installed once into
``benchmarks/.envs/litellm``) with one model at the simulator's OpenAI-compatible endpoint, the
endpoint our gpt backend uses. One chat completion body (what caller_svc itself sends for the
task) goes three ways: straight to the simulator, through the edge (``model: auto``, routed to
gpt), and through LiteLLM. It measures:

* added latency: sequential, one client, the three taking turns; each p50 minus the direct p50;
* throughput, errors and CPU per request at each concurrency level (32 is the target's), every
  target at one level before the next.

Targets (the issue's): edge added p50 ≤ 0.2× LiteLLM's; edge throughput at concurrency 32 ≥ 5×
LiteLLM's; 0 errors. Prints a table with the gap to each target, writes ``DIR/edge.md`` and
``DIR/edge.json``. ``--smoke`` (a few requests, no LiteLLM) is what
``tests/bench/test_edge_bench_smoke.py`` runs.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.procs import ROOT, Simulator, Stack, StartError, rss_kib
from benchmarks.run import (
    BACKEND,
    Load,
    direct_spec,
    level,
    litellm_spec,
    loadavg,
    log,
    machine,
    start_litellm,
)
from benchmarks.stats import fmt_mib, fmt_ms, fmt_rate, summary

LABEL = {"one": "one process, the edge linked in-process", "split": "four processes over gRPC"}
TARGET_ADDED_RATIO = 0.2  # edge added p50 / LiteLLM added p50, at most
TARGET_THROUGHPUT_RATIO = 5.0  # edge req/s / LiteLLM req/s at concurrency 32, at least


@dataclass(frozen=True)
class Sizes:
    name: str
    seq_n: int
    seq_warmup: int
    levels: tuple[int, ...]
    duration_s: float
    warmup_s: float
    max_requests: int = 0


FULL = Sizes("full", 1000, 200, (1, 8, 32), 5.0, 1.0)
QUICK = Sizes("quick", 300, 50, (1, 32), 3.0, 0.5)
SMOKE = Sizes("smoke", 10, 2, (1, 2), 2.0, 0.0, max_requests=8)


# -- the three ways to the same completion ------------------------------------------------------


def edge_spec(stack: Stack, direct: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "http",
        "name": "edge",
        "url": f"http://{stack.edge_addr}/v1/chat/completions",
        "headers": {},
        "json": {**direct["json"], "model": "auto"},
    }


def check_same_answer(specs: list[dict[str, Any]]) -> None:
    """One request each way before measuring: 200, a chat completion, the edge routed to gpt."""
    with httpx.Client(timeout=30, trust_env=False) as client:
        for spec in specs:
            resp = client.post(spec["url"], headers=spec["headers"], json=spec["json"])
            if resp.status_code != 200 or resp.json().get("object") != "chat.completion":
                raise StartError(f"{spec['name']}: HTTP {resp.status_code}: {resp.text[:300]}")
            if spec["name"] == "edge" and resp.headers.get("x-uniwizard-backend") != BACKEND:
                raise StartError(
                    f"the edge answered from {resp.headers.get('x-uniwizard-backend')}"
                )


# -- the run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="uniwizard-edge-bench-"))
    mode = "split" if args.split else "one"
    results: dict[str, Any] = {"sizes": sizes.name, "machine": machine(), "mode": mode}
    sim = Simulator(tmp / "sim")
    stack = Stack(tmp / "stack", sim, mode=mode, edge=True)
    load = Load(tmp)
    lite = None
    try:
        log("starting the simulator")
        sim.start()
        log(f"starting the stack and the edge ({LABEL[mode]})")
        stack.start()
        results["startup_s"] = stack.startup_s
        direct = direct_spec(sim.config_path)
        specs = [direct, edge_spec(stack, direct)]
        if not args.no_litellm:
            lite = start_litellm(sim, tmp, results)
            if lite is not None:
                specs.append(litellm_spec(lite, direct))
        check_same_answer(specs)
        watch = dict(stack.pids())
        if lite is not None:
            watch["litellm"] = lite.pid

        log(f"sequential: {', '.join(s['name'] for s in specs)} taking turns")
        res, _, _ = load.run(
            {"mode": "seq", "targets": specs, "n": sizes.seq_n, "warmup": sizes.seq_warmup}, {}
        )
        results["seq"] = {
            name: {
                **summary(r["latencies_ms"]),
                "ok": r["ok"],
                "errors": r["n"] - r["ok"],
                "error_kinds": r["errors"],
            }
            for name, r in res.items()
        }
        results["levels"] = levels(load, specs, sizes, watch)
        results["rss_peak"] = {n: rss_kib(p) for n, p in watch.items()}
        stack.check_alive()
    except StartError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        if lite is not None:
            lite.stop()
        results["exit_codes"] = {**stack.stop(), "sim": sim.stop()}
        results["loadavg_at_end"] = loadavg()

    evaluate(results)
    table = render(results)
    print(table, flush=True)
    (out / "edge.md").write_text(markdown(results, table))
    (out / "edge.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    log(f"wrote {out / 'edge.md'}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def levels(
    load: Load, specs: list[dict[str, Any]], sizes: Sizes, watch: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {s["name"]: [] for s in specs}
    for c in sizes.levels:
        for spec in specs:
            log(f"concurrency {c}: {spec['name']}")
            row, _ = level(load, spec, watch, c, sizes)
            rows[spec["name"]].append(row)
    return rows


# -- evaluation and output ----------------------------------------------------------------------


def verdict(value: float, target: float, *, higher_is_better: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    if (value >= target) if higher_is_better else (value <= target):
        return "met"
    gap = (target - value) if higher_is_better else (value - target)
    return f"MISSED by {gap:.2f}× ({value / target:.2f}× the target)"


def _at(rows: list[dict[str, Any]], c: int) -> dict[str, Any] | None:
    return next((x for x in rows if x["concurrency"] == c), None)


def evaluate(r: dict[str, Any]) -> None:
    seq, t = r["seq"], {}
    direct = seq["direct"]["p50"]
    r["added_p50_ms"] = {n: s["p50"] - direct for n, s in seq.items() if n != "direct"}
    r["added_p99_ms"] = {
        n: s["p99"] - seq["direct"]["p99"] for n, s in seq.items() if n != "direct"
    }
    errors = sum(x["errors"] for x in r["levels"]["edge"]) + seq["edge"]["errors"]
    t["edge_errors"] = "met" if errors == 0 else f"MISSED: {errors} errors"
    r["edge_errors"] = errors
    if "litellm" in seq:
        lite_added = r["added_p50_ms"]["litellm"]
        ratio = r["added_p50_ms"]["edge"] / lite_added if lite_added > 0 else math.nan
        r["added_ratio"] = ratio
        t["added_ratio"] = verdict(ratio, TARGET_ADDED_RATIO)
        top = max(x["concurrency"] for x in r["levels"]["edge"])
        c = 32 if _at(r["levels"]["edge"], 32) else top
        ours, theirs = _at(r["levels"]["edge"], c), _at(r["levels"]["litellm"], c)
        if ours and theirs and theirs["rps"] > 0:
            r["throughput_ratio"] = {"concurrency": c, "ratio": ours["rps"] / theirs["rps"]}
            t["throughput_ratio"] = verdict(
                ours["rps"] / theirs["rps"], TARGET_THROUGHPUT_RATIO, higher_is_better=True
            )
    r["targets"] = t


def render(r: dict[str, Any]) -> str:
    seq, t = r["seq"], r["targets"]

    def pair(name: str) -> str:
        return f"{fmt_ms(seq[name]['p50'])} / {fmt_ms(seq[name]['p99'])}"

    rows = [
        ("direct → simulator (the same chat completion), p50 / p99", pair("direct"), "", ""),
        (
            f"edge → router → caller → simulator ({LABEL[r['mode']]}), p50 / p99",
            pair("edge"),
            "",
            "",
        ),
        (
            f"edge added latency (sequential, n={seq['edge']['n']}), p50 / p99",
            f"{fmt_ms(r['added_p50_ms']['edge'])} / {fmt_ms(r['added_p99_ms']['edge'])}",
            "",
            "",
        ),
    ]
    lite = r.get("litellm") or {}
    if "litellm" in seq:
        rows += [
            (
                f"LiteLLM {lite.get('version', '?')} proxy → simulator, p50 / p99",
                pair("litellm"),
                "",
                "",
            ),
            (
                "LiteLLM added latency, p50 / p99",
                f"{fmt_ms(r['added_p50_ms']['litellm'])} / {fmt_ms(r['added_p99_ms']['litellm'])}",
                "",
                "",
            ),
            (
                "edge added p50 / LiteLLM's",
                f"{r['added_ratio']:.3f}×",
                f"≤ {TARGET_ADDED_RATIO}×",
                t["added_ratio"],
            ),
        ]
        if "throughput_ratio" in r:
            c = r["throughput_ratio"]["concurrency"]
            rows.append(
                (
                    f"edge throughput / LiteLLM's at concurrency {c}",
                    f"{r['throughput_ratio']['ratio']:.2f}×",
                    f"≥ {TARGET_THROUGHPUT_RATIO:.0f}×",
                    t["throughput_ratio"],
                )
            )
    elif "error" in lite:
        rows.append(("LiteLLM comparison", "not run: " + lite["error"][:70], "", ""))
    else:
        rows.append(("LiteLLM comparison", "not run (--no-litellm / --smoke)", "", ""))
    rows.append(("edge errors (all phases)", str(r["edge_errors"]), "0", t["edge_errors"]))
    out = [_table(("measurement", "result", "target", "verdict"), rows), ""]

    names = list(r["levels"])
    head = ["concurrency"]
    for n in names:
        head += [f"{n} req/s", f"{n} p50", f"{n} p99", f"{n} errors"]
    trows = []
    for i, x in enumerate(r["levels"]["edge"]):
        row = [str(x["concurrency"])]
        for n in names:
            y = r["levels"][n][i]
            row += [fmt_rate(y["rps"]), fmt_ms(y["p50"]), fmt_ms(y["p99"]), str(y["errors"])]
        trows.append(tuple(row))
    out += ["Throughput (the same chat completion, three ways):", "", _table(tuple(head), trows)]
    edge_rows = r["levels"]["edge"]
    procs = (
        [n for n in edge_rows[0]["cpu_ms_per_req"] if n not in ("litellm", "loadgen")]
        if edge_rows
        else []
    )
    crows = [
        (str(x["concurrency"]), *(f"{x['cpu_ms_per_req'][n]:.2f}" for n in procs))
        for x in edge_rows
    ]
    out += ["", "CPU per request through the edge (ms of CPU time):", ""]
    out.append(_table(("concurrency", *procs), crows))
    peak = r.get("rss_peak") or {}
    out += ["", "RSS at the end: " + ", ".join(f"{n} {fmt_mib(v)}" for n, v in peak.items())]
    codes = r.get("exit_codes") or {}
    out += ["exit codes on SIGTERM: " + ", ".join(f"{n} {c}" for n, c in codes.items())]
    return "\n".join(out)


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)
    ]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )


def markdown(r: dict[str, Any], table: str) -> str:
    m = r["machine"]
    flag = {"full": "", "quick": " --quick", "smoke": " --smoke"}[r["sizes"]]
    flag += " --split" if r["mode"] == "split" else ""
    return "\n".join(
        [
            "# The HTTP edge against the LiteLLM proxy",
            "",
            f"- date: {m['date']}; machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}",
            f"- load average when the run started: {m.get('loadavg_at_start', '?')}, when it"
            f" ended: {r.get('loadavg_at_end', '?')} (other work on the machine skews every"
            " figure)",
            f"- size: {r['sizes']} (`python -m benchmarks.edge{flag}`); the stack in"
            f" {LABEL[r['mode']]}; the simulator, the stack, LiteLLM and the load generator share"
            " the same cores; tracing off",
            "",
            table,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.edge", description=__doc__)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer requests, levels 1 and 32")
    size.add_argument("--smoke", action="store_true", help="a few requests, no LiteLLM (tests)")
    p.add_argument("--no-litellm", action="store_true", help="the edge and the direct call only")
    p.add_argument(
        "--split", action="store_true", help="four processes over gRPC (default: one, as up runs)"
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--keep", action="store_true", help="keep the temporary dir (logs, data)")
    args = p.parse_args(argv)
    if args.smoke:
        args.no_litellm = True
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
