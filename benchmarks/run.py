"""Benchmark the stack on the provider simulator: ``python -m benchmarks.run``.

    python -m benchmarks.run [--quick | --smoke] [--with-litellm] [--profile] [--out DIR]

Starts simulator, registry, caller and router as separate processes (like ``uniwizard up
--sim``) on free loopback ports with a temporary data dir, drives load from a separate
load-generator process, prints a table and writes ``DIR/latest.md``, ``DIR/results.json`` and
``DIR/latency.png`` (when matplotlib is installed). ``--profile`` adds py-spy profiles of the
router and caller under load (``DIR/profile.md`` and flame graphs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import decide, litellm_proxy
from benchmarks import profile as prof
from benchmarks.procs import ROOT, SIM_KEY, Stack, StartError, clean_env, cpu_seconds, rss_kib
from benchmarks.stats import fmt_mib, fmt_ms, fmt_rate, fmt_us, summary

DISPATCH_TEXT = "Who was the first emperor of Rome?"
BACKEND = "gpt"  # where that task routes: knowledge -> gpt (OpenAI chat completions)

TARGET_DECIDE_P50_US = 100.0
TARGET_OVERHEAD_P50_MS = 1.5
TARGET_STARTUP_S = 3.0
TARGET_VS_LITELLM_OVERHEAD = 0.25
TARGET_VS_LITELLM_THROUGHPUT = 4.0


@dataclass(frozen=True)
class Sizes:
    name: str
    decide_rounds: int
    route_n: int
    route_warmup: int
    seq_n: int
    seq_warmup: int
    levels: tuple[int, ...]
    duration_s: float
    warmup_s: float
    max_requests: int = 0  # per level; 0 = bounded by duration only
    profile_s: float = 10.0


FULL = Sizes("full", 500, 1000, 100, 1000, 200, (1, 8, 32, 128), 5.0, 1.0)
QUICK = Sizes("quick", 100, 200, 20, 300, 50, (1, 8, 32, 128), 2.0, 0.5, profile_s=5.0)
SMOKE = Sizes("smoke", 3, 10, 2, 10, 2, (1, 2), 2.0, 0.0, max_requests=8, profile_s=2.0)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- machine ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in ("grpc", "httpx", "aiohttp"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - informational only
            versions[mod] = "?"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
        "grpcio": versions["grpc"],
        "httpx": versions["httpx"],
        "aiohttp": versions["aiohttp"],
    }


# -- the load generator process ----------------------------------------------------------------


class Load:
    """Runs ``python -m benchmarks.load`` with a spec; samples RSS and CPU of watched pids."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.count = 0

    def run(
        self, spec: dict[str, Any], watch: dict[str, int], timeout: float = 600.0
    ) -> tuple[dict[str, Any], dict[str, int], dict[str, float]]:
        self.count += 1
        out = self.workdir / f"load-{self.count}.json"
        spec = {**spec, "out": str(out)}
        cpu0 = {n: cpu_seconds(p) for n, p in watch.items()}
        peak = {n: rss_kib(p) for n, p in watch.items()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.load"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(ROOT),
            env=clean_env(),
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            for n, p in watch.items():
                peak[n] = max(peak[n], rss_kib(p))
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.1)
        cpu = {n: cpu_seconds(p) - cpu0[n] for n, p in watch.items()}
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"load generator failed ({proc.returncode}):\n{err[-3000:]}")
        return json.loads(out.read_text()), peak, cpu


# -- phases ----------------------------------------------------------------------------------


def direct_spec(stack: Stack) -> dict[str, Any]:
    """The exact HTTP request caller_svc sends for the Dispatch task (built by its adapter)."""
    from uniwizard.config import load_config
    from uniwizard.providers import get_adapter
    from uniwizard.types import BlindRequest, Message, Role

    b = load_config(stack.config_path).backends[BACKEND]
    req = get_adapter(b.provider).build_request(
        b, BlindRequest((Message(Role.USER, DISPATCH_TEXT),)), SIM_KEY, stream=False
    )
    return {
        "kind": "http",
        "name": "direct",
        "url": req.url,
        "headers": req.headers,
        "json": req.json,
    }


def dispatch_spec(stack: Stack) -> dict[str, Any]:
    return {
        "kind": "dispatch",
        "name": "dispatch",
        "address": stack.addrs["router"],
        "text": DISPATCH_TEXT,
        "expect_backend": BACKEND,
    }


def conc_levels(
    load: Load, target: dict[str, Any], sizes: Sizes, watch: dict[str, int], label: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rows = []
    peak_all: dict[str, int] = dict.fromkeys(watch, 0)
    for c in sizes.levels:
        log(f"{label}: concurrency {c}")
        res, peak, cpu = load.run(
            {
                "mode": "conc",
                "target": target,
                "concurrency": c,
                "duration": sizes.duration_s,
                "warmup": sizes.warmup_s,
                "max_requests": sizes.max_requests,
            },
            watch,
        )
        for n, v in peak.items():
            peak_all[n] = max(peak_all[n], v)
        lat = summary(res["latencies_ms"])
        done = res["ok"] + res["errors"]
        total = max(1, res["total_requests"])
        cpu_ms = {n: 1000.0 * v / total for n, v in cpu.items()}
        cpu_ms["loadgen"] = 1000.0 * res["loadgen_cpu_s"] / total
        rows.append(
            {
                "concurrency": c,
                "rps": res["ok"] / res["elapsed_s"] if res["elapsed_s"] > 0 else math.nan,
                "requests": done,
                "errors": res["errors"],
                "error_rate": res["errors"] / done if done else math.nan,
                "error_kinds": res["error_kinds"],
                "p50": lat["p50"],
                "p99": lat["p99"],
                "cpu_ms_per_req": cpu_ms,
            }
        )
    return rows, peak_all


def run(args: argparse.Namespace) -> int:
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"sizes": sizes.name, "machine": machine(), "targets": {}}
    tmp = Path(tempfile.mkdtemp(prefix="uniwizard-bench-"))
    log(f"working directory {tmp}")

    # 1. route decision in-process (before anything else runs on the machine)
    log("route decision in-process")
    d = decide.measure(sizes.decide_rounds)
    results["decide"] = {
        "decide_us": summary(d["decide_us"]),
        "with_estimate_us": summary(d["with_estimate_us"]),
        "per_task_p50_us": {k: summary(v)["p50"] for k, v in d["per_task_us"].items()},
        "misrouted": d["misrouted"],
    }

    stack = Stack(tmp / "stack")
    load = Load(tmp)
    lite: litellm_proxy.LiteLLMProxy | None = None
    try:
        log("starting the stack (simulator, registry, caller, router)")
        stack.start()
        results["startup"] = {
            "services_s": stack.startup_s,
            "with_sim_s": stack.startup_total_s,
            "sim_s": stack.sim_ready_s,
            "per_service_s": stack.ready_s,
        }
        time.sleep(1.0)
        results["rss_idle"] = stack.rss()
        pids = {n: stack.pid(n) for n in ("router", "caller", "registry", "sim")}

        # 2. Route over gRPC
        log("Route over gRPC")
        res, _, _ = load.run(
            {
                "mode": "seq",
                "targets": [{"kind": "route", "name": "route", "address": stack.addrs["router"]}],
                "n": sizes.route_n,
                "warmup": sizes.route_warmup,
            },
            {},
        )
        results["route_grpc"] = {**summary(res["route"]["latencies_ms"]), "ok": res["route"]["ok"]}

        # 3. sequential: direct httpx vs Dispatch, taking turns
        log("sequential: direct vs Dispatch")
        direct = direct_spec(stack)
        disp = dispatch_spec(stack)
        res, _, _ = load.run(
            {
                "mode": "seq",
                "targets": [direct, disp],
                "n": sizes.seq_n,
                "warmup": sizes.seq_warmup,
            },
            {},
        )
        results["seq"] = {
            name: {**summary(r["latencies_ms"]), "ok": r["ok"], "errors": r["errors"]}
            for name, r in res.items()
        }

        # 4. throughput through Dispatch, and the simulator's own ceiling
        results["dispatch_levels"], peak = conc_levels(load, disp, sizes, pids, "Dispatch")
        results["sim_levels"], _ = conc_levels(
            load, direct, sizes, {"sim": pids["sim"]}, "simulator direct"
        )
        results["rss_peak"] = peak
        time.sleep(1.0)
        results["rss_after"] = stack.rss()

        # 5. profile (optional)
        if args.profile:
            profile_phase(load, stack, disp, sizes, out, results)

        # 6. LiteLLM (optional)
        if args.with_litellm:
            lite = litellm_phase(load, stack, direct, sizes, tmp, results)
        stack.check_alive()
    except StartError as exc:
        log(f"error: {exc}")
        for name in ("sim", "registry", "caller", "router"):
            p = tmp / "stack" / f"{name}.log"
            if p.exists():
                log(f"--- {name}.log ---\n" + p.read_text(errors="replace")[-2000:])
        return 1
    finally:
        if lite is not None:
            lite.stop()
        results["exit_codes"] = stack.stop()

    evaluate(results)
    table = render(results)
    print(table, flush=True)
    (out / "latest.md").write_text(markdown(results, table))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if not args.no_png:
        png = plot(results, out / "latency.png")
        log(f"wrote {png}" if png else "matplotlib not installed: no latency.png")
    log(f"wrote {out / 'latest.md'}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def profile_phase(
    load: Load,
    stack: Stack,
    disp: dict[str, Any],
    sizes: Sizes,
    out: Path,
    results: dict[str, Any],
) -> None:
    if prof.py_spy() is None:
        log("py-spy not installed: no profile")
        return
    c = 32 if 32 in sizes.levels else max(sizes.levels)
    log(f"profiling router and caller under Dispatch load at concurrency {c}")
    pids = {"router": stack.pid("router"), "caller": stack.pid("caller")}
    samplers = prof.start(pids, sizes.profile_s, out)
    res, _, _ = load.run(
        {
            "mode": "conc",
            "target": disp,
            "concurrency": c,
            "duration": sizes.profile_s + 1.0,
            "warmup": 0.5,
        },
        {},
    )
    errors = prof.wait(samplers, timeout=sizes.profile_s + 60)
    analysed = {n: prof.analyse(out / f"profile-{n}.txt") for n in pids}
    rps = res["ok"] / res["elapsed_s"] if res["elapsed_s"] else math.nan
    context = (
        f"Dispatch at concurrency {c} for {sizes.profile_s:.0f} s ({rps:.0f} req/s while sampled, "
        "py-spy --rate 100 --nonblocking, two samplers per process). Percentages are of the "
        "samples in which the process was running Python (idle threads are not sampled). "
        "Flame graphs: profile-router.svg, profile-caller.svg; collapsed stacks: profile-*.txt."
    )
    (out / "profile.md").write_text(prof.markdown(analysed, context) + "\n")
    results["profile"] = {"concurrency": c, "rps": rps, "errors": errors, **analysed}


def litellm_phase(
    load: Load,
    stack: Stack,
    direct: dict[str, Any],
    sizes: Sizes,
    tmp: Path,
    results: dict[str, Any],
) -> litellm_proxy.LiteLLMProxy | None:
    if not litellm_proxy.installed():
        log(f"installing {litellm_proxy.REQUIREMENT} into {litellm_proxy.ENV_DIR} (once)")
        if not litellm_proxy.install(tmp / "litellm-install.log"):
            log(f"LiteLLM install failed; see {tmp / 'litellm-install.log'}; skipping it")
            results["litellm"] = {"error": "install failed"}
            return None
    from uniwizard.config import load_config

    model = load_config(stack.config_path).backends[BACKEND].model
    api_base = direct["url"].rsplit("/chat/completions", 1)[0]
    lite = litellm_proxy.LiteLLMProxy(tmp / "litellm", api_base, model)
    log("starting the LiteLLM proxy")
    try:
        lite.start()
    except RuntimeError as exc:
        log(str(exc))
        results["litellm"] = {"error": str(exc)}
        return None
    time.sleep(1.0)
    lite_pids = {
        "litellm": lite.pid,
        **{f"litellm-{p}": p for p in litellm_proxy.child_pids(lite.pid)},
    }
    rss_idle = sum(rss_kib(p) for p in lite_pids.values())
    spec = {
        "kind": "http",
        "name": "litellm",
        "url": f"{lite.url}/v1/chat/completions",
        "headers": lite.headers,
        "json": {**direct["json"], "model": litellm_proxy.MODEL_NAME},
    }
    log("sequential: direct vs LiteLLM")
    res, _, _ = load.run(
        {
            "mode": "seq",
            "targets": [{**direct, "name": "direct"}, spec],
            "n": sizes.seq_n,
            "warmup": sizes.seq_warmup,
        },
        {},
    )
    seq = {name: {**summary(r["latencies_ms"]), "ok": r["ok"]} for name, r in res.items()}
    levels, peak = conc_levels(load, spec, sizes, {"litellm": lite.pid}, "LiteLLM")
    results["litellm"] = {
        "version": litellm_proxy.version(),
        "startup_s": lite.startup_s,
        "seq": seq,
        "levels": levels,
        "rss_idle": rss_idle,
        "rss_peak": peak.get("litellm", 0),
    }
    return lite


# -- evaluation and output -------------------------------------------------------------------


def verdict(value: float, target: float, *, higher_is_better: bool = False, unit: str = "") -> str:
    if math.isnan(value):
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "met"
    gap = (target - value) if higher_is_better else (value - target)
    ratio = value / target if target else math.inf
    return f"MISSED by {gap:.2f}{unit} ({ratio:.2f}× the target)"


def evaluate(r: dict[str, Any]) -> None:
    t = r["targets"]
    t["decide_p50_us"] = verdict(r["decide"]["decide_us"]["p50"], TARGET_DECIDE_P50_US, unit=" µs")
    seq = r.get("seq")
    if seq:
        over50 = seq["dispatch"]["p50"] - seq["direct"]["p50"]
        over99 = seq["dispatch"]["p99"] - seq["direct"]["p99"]
        r["overhead_ms"] = {"p50": over50, "p99": over99}
        t["overhead_p50_ms"] = verdict(over50, TARGET_OVERHEAD_P50_MS, unit=" ms")
    if "startup" in r:
        t["startup_s"] = verdict(r["startup"]["services_s"], TARGET_STARTUP_S, unit=" s")
    lite = r.get("litellm")
    if lite and "seq" in lite and seq:
        l50 = lite["seq"]["litellm"]["p50"] - lite["seq"]["direct"]["p50"]
        l99 = lite["seq"]["litellm"]["p99"] - lite["seq"]["direct"]["p99"]
        lite["overhead_ms"] = {"p50": l50, "p99": l99}
        ratio = r["overhead_ms"]["p50"] / l50 if l50 > 0 else math.nan
        lite["overhead_ratio"] = ratio
        t["overhead_vs_litellm"] = verdict(ratio, TARGET_VS_LITELLM_OVERHEAD, unit="×")
        ours = _level(r["dispatch_levels"], 32)
        theirs = _level(lite["levels"], 32)
        if ours and theirs and theirs["rps"] > 0:
            tr = ours["rps"] / theirs["rps"]
            lite["throughput_ratio_32"] = tr
            t["throughput_vs_litellm_32"] = verdict(
                tr, TARGET_VS_LITELLM_THROUGHPUT, higher_is_better=True, unit="×"
            )


def _level(rows: list[dict[str, Any]], c: int) -> dict[str, Any] | None:
    return next((x for x in rows if x["concurrency"] == c), None)


def _pair(a: float, b: float, f: Any) -> str:
    return f"{f(a)} / {f(b)}"


def render(r: dict[str, Any]) -> str:
    t = r["targets"]
    d = r["decide"]
    rows: list[tuple[str, str, str, str]] = [
        (
            "route decision (in-process), classify + build_chain, p50 / p99",
            _pair(d["decide_us"]["p50"], d["decide_us"]["p99"], fmt_us),
            f"p50 ≤ {TARGET_DECIDE_P50_US:.0f} µs",
            t["decide_p50_us"],
        ),
        (
            "route decision (in-process) incl. token estimate, p50 / p99",
            _pair(d["with_estimate_us"]["p50"], d["with_estimate_us"]["p99"], fmt_us),
            "",
            "",
        ),
    ]
    if "route_grpc" in r:
        g = r["route_grpc"]
        rows.append(("Route over gRPC, p50 / p99", _pair(g["p50"], g["p99"], fmt_ms), "", ""))
    if "seq" in r:
        s = r["seq"]
        rows += [
            (
                "direct httpx → simulator (gpt chat completion), p50 / p99",
                _pair(s["direct"]["p50"], s["direct"]["p99"], fmt_ms),
                "",
                "",
            ),
            (
                "Dispatch router → caller → simulator, p50 / p99",
                _pair(s["dispatch"]["p50"], s["dispatch"]["p99"], fmt_ms),
                "",
                "",
            ),
            (
                f"Dispatch overhead (sequential, n={s['dispatch']['n']}), p50 / p99",
                _pair(r["overhead_ms"]["p50"], r["overhead_ms"]["p99"], fmt_ms),
                f"p50 ≤ {TARGET_OVERHEAD_P50_MS} ms",
                t["overhead_p50_ms"],
            ),
        ]
    if "startup" in r:
        st = r["startup"]
        rows.append(
            (
                "startup: spawn → all services SERVING (incl. simulator)",
                f"{st['services_s']:.2f} s ({st['with_sim_s']:.2f} s)",
                f"≤ {TARGET_STARTUP_S:.0f} s",
                t["startup_s"],
            )
        )
    lite = r.get("litellm")
    if lite and "seq" in lite:
        ls = lite["seq"]
        rows += [
            (
                f"LiteLLM {lite['version']} proxy → simulator, p50 / p99",
                _pair(ls["litellm"]["p50"], ls["litellm"]["p99"], fmt_ms),
                "",
                "",
            ),
            (
                "LiteLLM overhead (sequential), p50 / p99",
                _pair(lite["overhead_ms"]["p50"], lite["overhead_ms"]["p99"], fmt_ms),
                "",
                "",
            ),
            (
                "our overhead / LiteLLM's, p50",
                f"{lite['overhead_ratio']:.3f}×",
                f"≤ {TARGET_VS_LITELLM_OVERHEAD}×",
                t.get("overhead_vs_litellm", ""),
            ),
        ]
        if "throughput_ratio_32" in lite:
            rows.append(
                (
                    "our throughput / LiteLLM's at concurrency 32",
                    f"{lite['throughput_ratio_32']:.2f}×",
                    f"≥ {TARGET_VS_LITELLM_THROUGHPUT:.0f}×",
                    t.get("throughput_vs_litellm_32", ""),
                )
            )
    elif lite and "error" in lite:
        rows.append(("LiteLLM comparison", "not run: " + lite["error"][:60], "", ""))

    out = [_table(("measurement", "result", "target", "verdict"), rows)]

    if "dispatch_levels" in r:
        sim = {x["concurrency"]: x for x in r["sim_levels"]}
        lit = {x["concurrency"]: x for x in (lite or {}).get("levels", [])}
        trows = []
        for x in r["dispatch_levels"]:
            c = x["concurrency"]
            row = [
                str(c),
                fmt_rate(x["rps"]),
                fmt_ms(x["p50"]),
                fmt_ms(x["p99"]),
                f"{100 * x['error_rate']:.1f}%",
                fmt_rate(sim[c]["rps"]) if c in sim else "",
                fmt_ms(sim[c]["p50"]) if c in sim else "",
            ]
            if lit:
                lx = lit.get(c)
                row += (
                    [
                        fmt_rate(lx["rps"]),
                        fmt_ms(lx["p50"]),
                        fmt_ms(lx["p99"]),
                        f"{100 * lx['error_rate']:.1f}%",
                    ]
                    if lx
                    else ["", "", "", ""]
                )
            trows.append(tuple(row))
        head = [
            "concurrency",
            "Dispatch req/s",
            "Dispatch p50",
            "Dispatch p99",
            "errors",
            "simulator direct req/s",
            "simulator p50",
        ]
        if lit:
            head += ["LiteLLM req/s", "LiteLLM p50", "LiteLLM p99", "LiteLLM errors"]
        out += ["", "Throughput (Dispatch through router → caller → simulator):", ""]
        out.append(_table(tuple(head), trows))

        procs = ("router", "caller", "registry", "sim", "loadgen")
        crow = []
        for x in r["dispatch_levels"]:
            cpu = x["cpu_ms_per_req"]
            crow.append(
                (
                    str(x["concurrency"]),
                    *(f"{cpu.get(p, math.nan):.2f}" for p in procs),
                    f"{sum(cpu.get(p, 0.0) for p in procs):.2f}",
                )
            )
        out += ["", "CPU per Dispatch request (ms of CPU time per completed request):", ""]
        out.append(_table(("concurrency", *procs, "total"), crow))

    if "rss_idle" in r:
        mrows = [
            (
                f"{n}{'_svc' if n != 'sim' else 'ulator'}",
                fmt_mib(r["rss_idle"].get(n, 0)),
                fmt_mib(r.get("rss_peak", {}).get(n, 0)),
                fmt_mib(r.get("rss_after", {}).get(n, 0)),
            )
            for n in ("registry", "router", "caller", "sim")
        ]
        if lite and "rss_idle" in lite:
            mrows.append(
                ("LiteLLM proxy", fmt_mib(lite["rss_idle"]), fmt_mib(lite["rss_peak"]), "")
            )
        out += ["", "RSS (VmRSS):", ""]
        out.append(_table(("process", "idle", "peak under load", "after load"), mrows))
    codes = r.get("exit_codes")
    if codes:
        out += ["", "exit codes on SIGTERM: " + ", ".join(f"{k} {v}" for k, v in codes.items())]
    return "\n".join(out)


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)
    ]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def markdown(r: dict[str, Any], table: str) -> str:
    m = r["machine"]
    lines = [
        "# Uniwizard benchmark results",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}; {m['platform']}",
        f"- grpcio {m['grpcio']}, httpx {m['httpx']}, aiohttp {m['aiohttp']}",
        f"- load average when the run started: {m.get('loadavg_at_start', '?')} (other work on"
        " the machine skews every figure; compare runs on a quiet machine)",
        f"- size: {r['sizes']} (`python -m benchmarks.run"
        + {"full": "", "quick": " --quick", "smoke": " --smoke"}[r["sizes"]]
        + (" --with-litellm" if r.get("litellm") else "")
        + "`)",
        "- every process (simulator, registry, caller, router, load generator"
        + (", LiteLLM" if r.get("litellm") else "")
        + f") shares the same {m['cores']} cores; tracing off (no OTEL_* exporter)",
        "",
        table,
        "",
    ]
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series = [("Dispatch (router → caller → sim)", r["dispatch_levels"], "tab:blue")]
    series.append(("simulator direct", r["sim_levels"], "tab:green"))
    lite = r.get("litellm") or {}
    if lite.get("levels"):
        series.append(("LiteLLM proxy → sim", lite["levels"], "tab:red"))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for label, rows, color in series:
        cs = [x["concurrency"] for x in rows]
        ax1.plot(cs, [x["p50"] for x in rows], "o-", color=color, label=f"{label} p50")
        ax1.plot(cs, [x["p99"] for x in rows], "s--", color=color, alpha=0.6, label=f"{label} p99")
        ax2.plot(cs, [x["rps"] for x in rows], "o-", color=color, label=label)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        levels = [x["concurrency"] for x in r["dispatch_levels"]]
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrency (clients)")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("latency (ms, log)")
    ax1.set_title("latency percentiles")
    ax2.set_ylabel("requests / s")
    ax2.set_title("throughput")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=8)
    m = r["machine"]
    fig.suptitle(f"Uniwizard on the simulator — {m['cpu']}, {m['cores']} cores, {m['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller counts and shorter levels")
    size.add_argument(
        "--smoke", action="store_true", help="a few requests, concurrency 1 and 2 (tests)"
    )
    p.add_argument("--with-litellm", action="store_true", help="compare with the LiteLLM proxy")
    p.add_argument("--profile", action="store_true", help="py-spy the router and caller")
    p.add_argument("--no-png", action="store_true", help="do not draw latency.png")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--keep", action="store_true", help="keep the temporary dir (logs, data)")
    args = p.parse_args(argv)
    if args.smoke:
        args.no_png = True
        args.with_litellm = False
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
