"""Benchmark the stack on the provider simulator: ``python -m benchmarks.run``.

    python -m benchmarks.run [--quick | --smoke] [--with-litellm] [--profile] [--out DIR]

Starts the simulator, then the stack twice, side by side, on free loopback ports with their own
temporary data dirs: in **one process** (``uniwizard serve --target all``, what ``uniwizard up``
runs: registry, caller and router linked in-process) and in **three processes** (``uniwizard up
--split``: each ``python -m <service>``, linked over gRPC); with ``--with-litellm`` a LiteLLM
proxy too. A separate load-generator process sends the same request (a gpt chat completion)
straight to the simulator, through each stack and through LiteLLM, one client taking turns
between them, so every figure of a comparison is measured in the same minutes on the same
machine. Prints a table with the gap to each target and writes ``DIR/latest.md``,
``DIR/results.json`` and ``DIR/latency.png`` (when matplotlib is installed). ``--profile`` adds
py-spy profiles under load (``DIR/profile.md`` and flame graphs).
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks import decide, litellm_proxy
from benchmarks import profile as prof
from benchmarks.procs import (
    ROOT,
    SIM_KEY,
    Simulator,
    Stack,
    StartError,
    Watched,
    clean_env,
    rss_kib,
    watched_cpu,
    watched_rss,
)
from benchmarks.stats import fmt_mib, fmt_ms, fmt_rate, fmt_us, summary

DISPATCH_TEXT = "Who was the first emperor of Rome?"
BACKEND = "gpt"  # where that task routes: knowledge -> gpt (OpenAI chat completions)

MODES = ("one", "split")
LABEL = {"one": "one process", "split": "three processes"}

TARGET_DECIDE_P50_US = 50.0
TARGET_ADDED_P50_MS = {"one": 0.7, "split": 1.5}
TARGET_VS_LITELLM_ADDED = 0.1
TARGET_VS_LITELLM_THROUGHPUT = 10.0  # one process, at concurrency 32, with no errors
TARGET_RSS_ONE_MIB = 100.0
TARGET_STARTUP_ONE_S = 1.0
THROUGHPUT_LEVEL = 32


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


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- the load generator process ----------------------------------------------------------------


class Load:
    """Runs ``python -m benchmarks.load`` with a spec; samples RSS and CPU of watched processes
    (a pid, or a :class:`~benchmarks.procs.ProcessTree` counted with its children)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.count = 0

    def run(
        self, spec: dict[str, Any], watch: Mapping[str, Watched], timeout: float = 600.0
    ) -> tuple[dict[str, Any], dict[str, int], dict[str, float]]:
        self.count += 1
        out = self.workdir / f"load-{self.count}.json"
        spec = {**spec, "out": str(out)}
        cpu0 = {n: watched_cpu(p) for n, p in watch.items()}
        peak = {n: watched_rss(p) for n, p in watch.items()}
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
                peak[n] = max(peak[n], watched_rss(p))
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.1)
        cpu = {n: watched_cpu(p) - cpu0[n] for n, p in watch.items()}
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"load generator failed ({proc.returncode}):\n{err[-3000:]}")
        return json.loads(out.read_text()), peak, cpu


# -- targets of the load ---------------------------------------------------------------------


def direct_spec(config_path: str) -> dict[str, Any]:
    """The exact HTTP request caller_svc sends for the Dispatch task (built by its adapter)."""
    from uniwizard.config import load_config
    from uniwizard.providers import get_adapter
    from uniwizard.types import BlindRequest, Message, Role

    b = load_config(config_path).backends[BACKEND]
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
        "name": stack.mode,
        "address": stack.addrs["router"],
        "text": DISPATCH_TEXT,
        "expect_backend": BACKEND,
    }


def litellm_spec(lite: litellm_proxy.LiteLLMProxy, direct: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "http",
        "name": "litellm",
        "url": f"{lite.url}/v1/chat/completions",
        "headers": lite.headers,
        "json": {**direct["json"], "model": litellm_proxy.MODEL_NAME},
    }


def levels_phase(
    load: Load, targets: dict[str, tuple[dict[str, Any], dict[str, int]]], sizes: Sizes
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, int]]]:
    """Throughput at each concurrency level, every target at one level before the next level
    (so slow drift in the machine's load touches all alike). Per target: rows, peak RSS."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    peaks: dict[str, dict[str, int]] = {
        name: dict.fromkeys(watch, 0) for name, (_, watch) in targets.items()
    }
    for c in sizes.levels:
        for name, (spec, watch) in targets.items():
            log(f"concurrency {c}: {name}")
            row, peak = level(load, spec, watch, c, sizes)
            for n, v in peak.items():
                peaks[name][n] = max(peaks[name][n], v)
            rows[name].append(row)
    return rows, peaks


class LevelSizes(Protocol):
    """How long one concurrency level runs (``Sizes`` here, ``benchmarks.edge.Sizes``)."""

    @property
    def duration_s(self) -> float: ...

    @property
    def warmup_s(self) -> float: ...

    @property
    def max_requests(self) -> int: ...


def level(
    load: Load, spec: dict[str, Any], watch: Mapping[str, Watched], c: int, sizes: LevelSizes
) -> tuple[dict[str, Any], dict[str, int]]:
    """One target at concurrency ``c`` for ``sizes.duration_s`` (after ``sizes.warmup_s``): its
    row (req/s, p50/p99, errors, CPU ms per request of each watched process and of the load
    generator) and the watched processes' peak RSS."""
    res, peak, cpu = load.run(
        {
            "mode": "conc",
            "target": spec,
            "concurrency": c,
            "duration": sizes.duration_s,
            "warmup": sizes.warmup_s,
            "max_requests": sizes.max_requests,
        },
        watch,
    )
    lat = summary(res["latencies_ms"])
    done = res["ok"] + res["errors"]
    total = max(1, res["total_requests"])
    cpu_ms = {n: 1000.0 * v / total for n, v in cpu.items()}
    cpu_ms["loadgen"] = 1000.0 * res["loadgen_cpu_s"] / total
    row = {
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
    return row, peak


# -- the run ---------------------------------------------------------------------------------


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

    sim = Simulator(tmp / "sim")
    stacks = {mode: Stack(tmp / mode, sim, mode=mode) for mode in MODES}
    load = Load(tmp)
    lite: litellm_proxy.LiteLLMProxy | None = None
    try:
        log("starting the simulator")
        sim.start()
        results["startup"] = {"sim_s": sim.ready_s}
        for mode, stack in stacks.items():  # one at a time: start-up is measured alone
            log(f"starting the stack in {LABEL[mode]}")
            stack.start()
            results["startup"][mode] = {
                "services_s": stack.startup_s,
                "per_service_s": stack.ready_s,
            }
            time.sleep(0.5)
        direct = direct_spec(sim.config_path)
        if args.with_litellm:
            lite = start_litellm(sim, tmp, results)
        time.sleep(1.0)
        results["rss_idle"] = {mode: stack.rss() for mode, stack in stacks.items()}
        results["rss_idle"]["sim"] = {"sim": rss_kib(sim.pid)}
        results["loadavg_before_load"] = loadavg()

        # 2. Route over gRPC, each stack
        log("Route over gRPC")
        res, _, _ = load.run(
            {
                "mode": "seq",
                "targets": [
                    {"kind": "route", "name": mode, "address": s.addrs["router"]}
                    for mode, s in stacks.items()
                ],
                "n": sizes.route_n,
                "warmup": sizes.route_warmup,
            },
            {},
        )
        results["route_grpc"] = {
            mode: {**summary(r["latencies_ms"]), "ok": r["ok"]} for mode, r in res.items()
        }

        # 3. one client taking turns: direct, one process, three processes (, LiteLLM)
        log("sequential: direct, one process, three processes" + (", LiteLLM" if lite else ""))
        seq_targets = [direct, *(dispatch_spec(s) for s in stacks.values())]
        if lite is not None:
            seq_targets.append(litellm_spec(lite, direct))
        res, _, _ = load.run(
            {"mode": "seq", "targets": seq_targets, "n": sizes.seq_n, "warmup": sizes.seq_warmup},
            {},
        )
        results["seq"] = {
            name: {**summary(r["latencies_ms"]), "ok": r["ok"], "errors": r["errors"]}
            for name, r in res.items()
        }

        # 4. throughput: each stack, the simulator alone (, LiteLLM), level by level
        targets: dict[str, tuple[dict[str, Any], dict[str, int]]] = {
            mode: (dispatch_spec(s), {**s.pids(), "sim": sim.pid}) for mode, s in stacks.items()
        }
        targets["direct"] = (direct, {"sim": sim.pid})
        if lite is not None:
            targets["litellm"] = (litellm_spec(lite, direct), {"litellm": lite.pid})
        results["levels"], peaks = levels_phase(load, targets, sizes)
        results["rss_peak"] = {mode: {n: v for n, v in peaks[mode].items() if n != "sim"}
                               for mode in MODES}
        if lite is not None:
            results["litellm"]["rss_peak"] = peaks["litellm"].get("litellm", 0)
        time.sleep(1.0)
        results["rss_after"] = {mode: stack.rss() for mode, stack in stacks.items()}

        # 5. profile (optional)
        if args.profile:
            profile_phase(load, stacks, sizes, out, results)
        for stack in stacks.values():
            stack.check_alive()
    except StartError as exc:
        log(f"error: {exc}")
        for p in sorted(tmp.rglob("*.log")):
            log(f"--- {p.relative_to(tmp)} ---\n" + p.read_text(errors="replace")[-2000:])
        return 1
    finally:
        if lite is not None:
            lite.stop()
        results["exit_codes"] = {mode: stack.stop() for mode, stack in stacks.items()}
        sim.stop()

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


def start_litellm(
    sim: Simulator, tmp: Path, results: dict[str, Any]
) -> litellm_proxy.LiteLLMProxy | None:
    if not litellm_proxy.installed():
        log(f"installing {litellm_proxy.REQUIREMENT} into {litellm_proxy.ENV_DIR} (once)")
        if not litellm_proxy.install(tmp / "litellm-install.log"):
            log(f"LiteLLM install failed; see {tmp / 'litellm-install.log'}; skipping it")
            results["litellm"] = {"error": "install failed"}
            return None
    from uniwizard.config import load_config

    model = load_config(sim.config_path).backends[BACKEND].model
    api_base = direct_spec(sim.config_path)["url"].rsplit("/chat/completions", 1)[0]
    lite = litellm_proxy.LiteLLMProxy(tmp / "litellm", api_base, model)
    log("starting the LiteLLM proxy")
    try:
        lite.start()
    except RuntimeError as exc:
        log(str(exc))
        results["litellm"] = {"error": str(exc)}
        return None
    time.sleep(1.0)
    pids = [lite.pid, *litellm_proxy.child_pids(lite.pid)]
    results["litellm"] = {
        "version": litellm_proxy.version(),
        "startup_s": lite.startup_s,
        "rss_idle": sum(rss_kib(p) for p in pids),
    }
    return lite


def profile_phase(
    load: Load, stacks: dict[str, Stack], sizes: Sizes, out: Path, results: dict[str, Any]
) -> None:
    if prof.py_spy() is None:
        log("py-spy not installed: no profile")
        return
    c = THROUGHPUT_LEVEL if THROUGHPUT_LEVEL in sizes.levels else max(sizes.levels)
    results["profile"] = {}
    sections = []
    for mode, stack in stacks.items():
        pids = stack.pids() if mode == "one" else {n: stack.pid(n) for n in ("router", "caller")}
        names = {n: f"{mode}-{n}" for n in pids}
        log(f"profiling {LABEL[mode]} under Dispatch load at concurrency {c}")
        samplers = prof.start({names[n]: p for n, p in pids.items()}, sizes.profile_s, out)
        res, _, _ = load.run(
            {
                "mode": "conc",
                "target": dispatch_spec(stack),
                "concurrency": c,
                "duration": sizes.profile_s + 1.0,
                "warmup": 0.5,
            },
            {},
        )
        errors = prof.wait(samplers, timeout=sizes.profile_s + 60)
        analysed = {names[n]: prof.analyse(out / f"profile-{names[n]}.txt") for n in pids}
        rps = res["ok"] / res["elapsed_s"] if res["elapsed_s"] else math.nan
        sections.append(
            prof.markdown(
                analysed,
                f"{LABEL[mode]}: Dispatch at concurrency {c} for {sizes.profile_s:.0f} s "
                f"({rps:.0f} req/s while sampled, py-spy --rate 100 --nonblocking, two samplers "
                "per process). Percentages are of the samples in which the process was running "
                "Python (idle threads are not sampled). Flame graphs: "
                + ", ".join(f"profile-{v}.svg" for v in names.values())
                + "; collapsed stacks: profile-*.txt.",
            )
        )
        results["profile"][mode] = {"concurrency": c, "rps": rps, "errors": errors, **analysed}
    (out / "profile.md").write_text("\n".join(sections) + "\n")


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


def _level(rows: list[dict[str, Any]], c: int) -> dict[str, Any] | None:
    return next((x for x in rows if x["concurrency"] == c), None)


def evaluate(r: dict[str, Any]) -> None:
    t = r["targets"]
    t["decide_p50_us"] = verdict(r["decide"]["decide_us"]["p50"], TARGET_DECIDE_P50_US, unit=" µs")
    seq = r.get("seq")
    if seq:
        direct = seq["direct"]
        r["added_ms"] = {
            mode: {"p50": seq[mode]["p50"] - direct["p50"], "p99": seq[mode]["p99"] - direct["p99"]}
            for mode in MODES
        }
        for mode in MODES:
            t[f"added_p50_ms_{mode}"] = verdict(
                r["added_ms"][mode]["p50"], TARGET_ADDED_P50_MS[mode], unit=" ms"
            )
    if "startup" in r:
        t["startup_s_one"] = verdict(
            r["startup"]["one"]["services_s"], TARGET_STARTUP_ONE_S, unit=" s"
        )
    if "rss_peak" in r:
        peak_mib = r["rss_peak"]["one"]["stack"] / 1024
        t["rss_mib_one"] = verdict(peak_mib, TARGET_RSS_ONE_MIB, unit=" MiB")
    lite = r.get("litellm")
    if lite and "litellm" in (seq or {}):
        l50 = seq["litellm"]["p50"] - seq["direct"]["p50"]
        l99 = seq["litellm"]["p99"] - seq["direct"]["p99"]
        lite["added_ms"] = {"p50": l50, "p99": l99}
        lite["added_ratio"] = {}
        for mode in MODES:
            ratio = r["added_ms"][mode]["p50"] / l50 if l50 > 0 else math.nan
            lite["added_ratio"][mode] = ratio
            t[f"vs_litellm_added_{mode}"] = verdict(ratio, TARGET_VS_LITELLM_ADDED, unit="×")
        ours = _level(r["levels"]["one"], THROUGHPUT_LEVEL)
        theirs = _level(r["levels"].get("litellm", []), THROUGHPUT_LEVEL)
        if ours and theirs and theirs["rps"] > 0:
            tr = ours["rps"] / theirs["rps"]
            lite["throughput_ratio"] = tr
            t["vs_litellm_throughput_one"] = verdict(
                tr, TARGET_VS_LITELLM_THROUGHPUT, higher_is_better=True, unit="×"
            )
            if ours["errors"]:
                t["vs_litellm_throughput_one"] = f"MISSED: {ours['errors']} errors"


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
        for mode in MODES:
            g = r["route_grpc"][mode]
            label = f"Route over gRPC, {LABEL[mode]}, p50 / p99"
            rows.append((label, _pair(g["p50"], g["p99"], fmt_ms), "", ""))
    seq = r.get("seq")
    lite = r.get("litellm") or {}
    if seq:
        n = seq["direct"]["n"]
        rows.append(
            (
                f"direct httpx → simulator (gpt chat completion), p50 / p99 (n={n} each)",
                _pair(seq["direct"]["p50"], seq["direct"]["p99"], fmt_ms),
                "",
                "",
            )
        )
        for mode in MODES:
            rows.append(
                (
                    f"Dispatch router → caller → simulator, {LABEL[mode]}, p50 / p99",
                    _pair(seq[mode]["p50"], seq[mode]["p99"], fmt_ms),
                    "",
                    "",
                )
            )
        if "litellm" in seq:
            rows.append(
                (
                    f"LiteLLM {lite.get('version', '?')} proxy → simulator, p50 / p99",
                    _pair(seq["litellm"]["p50"], seq["litellm"]["p99"], fmt_ms),
                    "",
                    "",
                )
            )
        for mode in MODES:
            a = r["added_ms"][mode]
            rows.append(
                (
                    f"added over the direct call, {LABEL[mode]}, p50 / p99",
                    _pair(a["p50"], a["p99"], fmt_ms),
                    f"p50 ≤ {TARGET_ADDED_P50_MS[mode]} ms",
                    t[f"added_p50_ms_{mode}"],
                )
            )
        if "added_ms" in lite:
            a = lite["added_ms"]
            rows.append(("added by LiteLLM, p50 / p99", _pair(a["p50"], a["p99"], fmt_ms), "", ""))
            for mode in MODES:
                rows.append(
                    (
                        f"our added p50 / LiteLLM's, {LABEL[mode]}",
                        f"{lite['added_ratio'][mode]:.3f}×",
                        f"≤ {TARGET_VS_LITELLM_ADDED}×",
                        t[f"vs_litellm_added_{mode}"],
                    )
                )
    if "throughput_ratio" in lite:
        ours = _level(r["levels"]["one"], THROUGHPUT_LEVEL) or {}
        theirs = _level(r["levels"]["litellm"], THROUGHPUT_LEVEL) or {}
        rows.append(
            (
                f"throughput at concurrency {THROUGHPUT_LEVEL}, one process / LiteLLM",
                f"{lite['throughput_ratio']:.1f}× ({ours.get('rps', 0):.0f} vs "
                f"{theirs.get('rps', 0):.0f} req/s, {ours.get('errors', 0)} errors)",
                f"≥ {TARGET_VS_LITELLM_THROUGHPUT:.0f}×, 0 errors",
                t.get("vs_litellm_throughput_one", ""),
            )
        )
    elif lite.get("error"):
        rows.append(("LiteLLM comparison", "not run: " + lite["error"][:60], "", ""))
    if "rss_peak" in r:
        rows.append(
            (
                "RSS, one process under load (peak)",
                fmt_mib(r["rss_peak"]["one"]["stack"]),
                f"≤ {TARGET_RSS_ONE_MIB:.0f} MiB",
                t["rss_mib_one"],
            )
        )
    if "startup" in r:
        st = r["startup"]
        rows.append(
            (
                "spawn → every service SERVING, one process / three processes",
                f"{st['one']['services_s']:.2f} s / {st['split']['services_s']:.2f} s",
                f"one process ≤ {TARGET_STARTUP_ONE_S:.1f} s",
                t["startup_s_one"],
            )
        )

    out = [md_table(("measurement", "result", "target", "verdict"), rows)]

    if "levels" in r:
        levels = r["levels"]
        heads = [
            ("one", "one process"),
            ("split", "three processes"),
            ("direct", "simulator alone"),
        ]
        if "litellm" in levels:
            heads.append(("litellm", "LiteLLM"))
        trows = []
        for i, x in enumerate(levels["one"]):
            row = [str(x["concurrency"])]
            for name, _ in heads:
                y = levels[name][i]
                row += [fmt_rate(y["rps"]), f"{fmt_ms(y['p50'])} / {fmt_ms(y['p99'])}",
                        f"{100 * y['error_rate']:.1f}%"]
            trows.append(tuple(row))
        head = ["concurrency"]
        for _, label in heads:
            head += [f"{label} req/s", f"{label} p50 / p99", f"{label} errors"]
        out += ["", "Throughput (the same request, each target alone at each level):", ""]
        out.append(md_table(tuple(head), trows))

        crow = []
        for mode, procs in (("one", ("stack",)), ("split", ("router", "caller", "registry"))):
            for x in levels[mode]:
                cpu = x["cpu_ms_per_req"]
                parts = ", ".join(f"{p} {cpu.get(p, math.nan):.2f}" for p in procs)
                ours = sum(cpu.get(p, 0.0) for p in procs)
                crow.append(
                    (
                        LABEL[mode],
                        str(x["concurrency"]),
                        parts,
                        f"{ours:.2f}",
                        f"{cpu.get('sim', math.nan):.2f}",
                        f"{cpu.get('loadgen', math.nan):.2f}",
                    )
                )
        out += ["", "CPU per Dispatch request (ms of CPU time per completed request):", ""]
        out.append(
            md_table(("stack", "concurrency", "per process", "stack total", "sim", "loadgen"), crow)
        )

    if "rss_idle" in r:
        mrows = []
        for mode, names in (("one", ("stack",)), ("split", ("registry", "router", "caller"))):
            for n in names:
                label = "one process (all three)" if n == "stack" else f"{n}_svc (three processes)"
                mrows.append(
                    (
                        label,
                        fmt_mib(r["rss_idle"][mode].get(n, 0)),
                        fmt_mib(r.get("rss_peak", {}).get(mode, {}).get(n, 0)),
                        fmt_mib(r.get("rss_after", {}).get(mode, {}).get(n, 0)),
                    )
                )
        mrows.append(("simulator", fmt_mib(r["rss_idle"]["sim"]["sim"]), "", ""))
        if "rss_idle" in lite:
            mrows.append(
                ("LiteLLM proxy", fmt_mib(lite["rss_idle"]), fmt_mib(lite.get("rss_peak", 0)), "")
            )
        out += ["", "RSS (VmRSS):", ""]
        out.append(md_table(("process", "idle", "peak under load", "after load"), mrows))
    codes = r.get("exit_codes")
    if codes:
        parts = []
        for mode, c in codes.items():
            parts.append(f"{LABEL[mode]}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
        out += ["", "exit codes on SIGTERM: " + "; ".join(parts)]
    return "\n".join(out)


def md_table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
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
        f"- load average when the run started: {m.get('loadavg_at_start', '?')}, before the load"
        f" phases: {r.get('loadavg_before_load', '?')} (other work on the machine skews every"
        " figure; the comparisons are measured side by side to cancel most of it)",
        f"- size: {r['sizes']} (`python -m benchmarks.run"
        + {"full": "", "quick": " --quick", "smoke": " --smoke"}[r["sizes"]]
        + (" --with-litellm" if r.get("litellm") else "")
        + "`)",
        "- every process (simulator, both stacks, load generator"
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
    levels = r["levels"]
    series = [
        ("Dispatch, one process", levels["one"], "tab:blue"),
        ("Dispatch, three processes", levels["split"], "tab:purple"),
        ("simulator direct", levels["direct"], "tab:green"),
    ]
    if levels.get("litellm"):
        series.append(("LiteLLM proxy → sim", levels["litellm"], "tab:red"))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for label, rows, color in series:
        cs = [x["concurrency"] for x in rows]
        ax1.plot(cs, [x["p50"] for x in rows], "o-", color=color, label=f"{label} p50")
        ax1.plot(cs, [x["p99"] for x in rows], "s--", color=color, alpha=0.6, label=f"{label} p99")
        ax2.plot(cs, [x["rps"] for x in rows], "o-", color=color, label=label)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        cs = [x["concurrency"] for x in levels["one"]]
        ax.set_xticks(cs, [str(c) for c in cs])
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
    p.add_argument("--profile", action="store_true", help="py-spy both stacks under load")
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
