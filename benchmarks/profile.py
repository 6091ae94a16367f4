"""py-spy profiles of the router and caller processes while Dispatch is under load.

For each process two samplers run side by side: one writes a flame graph (SVG), the other the
collapsed stacks (``--format raw``), from which the top functions by self and inclusive time are
computed (percent of the samples in which the process was running Python code; idle threads are
not sampled).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    if here.exists():
        return str(here)
    return shutil.which("py-spy")


def start(pids: dict[str, int], duration: float, outdir: Path, rate: int = 100) -> list[Any]:
    """Start the samplers (they stop by themselves after ``duration`` seconds)."""
    exe = py_spy()
    assert exe is not None
    outdir.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in pids.items():
        for fmt, path in (("raw", outdir / f"profile-{name}.txt"), ("flamegraph", None)):
            out = path or outdir / f"profile-{name}.svg"
            procs.append(
                subprocess.Popen(
                    [
                        exe,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(max(1, round(duration))),
                        "--rate",
                        str(rate),
                        "--nonblocking",
                        "--nolineno",
                        "--format",
                        fmt,
                        "-o",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
    return procs


def wait(procs: list[Any], timeout: float) -> list[str]:
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0:
            errors.append((err or b"").decode(errors="replace").strip().splitlines()[-1:][0:1])
    return [e[0] for e in errors if e]


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")

_PACKAGES = (
    ("grpc/aio", "grpc.aio"),
    ("grpc/_cython", "grpc (cython)"),
    ("grpc_", "grpc (health/reflection)"),
    ("grpc/", "grpc"),
    ("google/protobuf", "protobuf"),
    ("opentelemetry", "opentelemetry"),
    ("httpx", "httpx"),
    ("httpcore", "httpcore"),
    ("h11", "h11"),
    ("anyio", "anyio"),
    ("asyncio", "asyncio"),
    ("sqlite3", "sqlite3"),
    ("caller_svc/", "caller_svc"),
    ("router_svc/", "router_svc"),
    ("registry_svc/", "registry_svc"),
    ("uniwizard/", "uniwizard"),
    ("json", "json"),
    ("uuid", "uuid"),
    ("dataclasses", "dataclasses"),
    ("enum", "enum"),
    ("typing", "typing"),
    ("re/", "re"),
    ("ssl", "ssl"),
    ("logging", "logging"),
)


def _package(file: str) -> str:
    for needle, name in _PACKAGES:
        if needle in file:
            return name
    return Path(file).name or file


def _short(frame: str) -> tuple[str, str]:
    """'func (path/to/file.py)' -> ('file.py:func', package)."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), "?"
    file = m.group("file")
    parts = Path(file).parts
    # keep the last two path parts: enough to tell caller_svc/core.py from httpx/_client.py
    tail = "/".join(parts[-2:]) if len(parts) >= 2 else file
    return f"{tail}:{m.group('func')}", _package(file)


def analyse(raw_path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by self and inclusive samples, and self samples per package."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    pkg_c: Counter[str] = Counter()
    total = 0
    if not raw_path.exists():
        return {"samples": 0, "self": [], "inclusive": [], "packages": []}
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        names = [_short(f) for f in frames]
        leaf, pkg = names[-1]
        self_c[leaf] += count
        pkg_c[pkg] += count
        for name in {n for n, _ in names}:
            incl_c[name] += count

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k, 100.0 * v / total) for k, v in c.most_common(top)] if total else []

    return {
        "samples": total,
        "self": pct(self_c),
        "inclusive": pct(incl_c),
        "packages": pct(pkg_c),
    }


def markdown(results: dict[str, dict[str, Any]], context: str) -> str:
    lines = [
        "# Dispatch hot-path profile (py-spy)",
        "",
        context,
        "",
        "Reading it: grpc.aio is Cython and C-core, which make no Python frames, so its cost shows"
        " up as *self* time of the Python frame that called into it: `Handle._run` (completion"
        " callbacks and server-side RPC handling), `UnaryUnaryCall._invoke` (client calls) and"
        " `Thread.run` (grpc.aio's poller thread). `EpollSelector.select` is the event loop's own"
        " poll.",
        "",
    ]
    for name, r in results.items():
        lines += [f"## {name}_svc ({r['samples']} samples)", ""]
        lines += ["Self time by package:", ""]
        lines += [f"- {p}: {v:.1f}%" for p, v in r["packages"]]
        lines += ["", "| top self time | % | top inclusive time | % |", "|---|---:|---|---:|"]
        for i in range(max(len(r["self"]), len(r["inclusive"]))):
            s = r["self"][i] if i < len(r["self"]) else ("", 0.0)
            c = r["inclusive"][i] if i < len(r["inclusive"]) else ("", 0.0)
            lines.append(
                f"| `{s[0]}` | {s[1]:.1f} | `{c[0]}` | {c[1]:.1f} |"
                if s[0]
                else f"| | | `{c[0]}` | {c[1]:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)
