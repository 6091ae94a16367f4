"""The benchmark runs end to end at a tiny size: both stacks (one process, three processes) side
by side, a table with a verdict per target, latest.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_ROWS = (
    "route decision (in-process), classify + build_chain",
    "Route over gRPC, one process",
    "Route over gRPC, three processes",
    "direct httpx → simulator",
    "Dispatch router → caller → simulator, one process",
    "Dispatch router → caller → simulator, three processes",
    "added over the direct call, one process",
    "added over the direct call, three processes",
    "RSS, one process under load",
    "spawn → every service SERVING, one process / three processes",
    "one process req/s",
    "three processes req/s",
    "simulator alone req/s",
    "CPU per Dispatch request",
    "one process (all three)",
    "router_svc (three processes)",
    "caller_svc (three processes)",
    "registry_svc (three processes)",
    "exit codes on SIGTERM: one process: stack 0; three processes: router 0, caller 0, "
    "registry 0",
)


def test_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for row in EXPECTED_ROWS:
        assert row in table, f"missing {row!r} in:\n{table}"
    levels = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert "1" in levels and "2" in levels  # concurrency rows of the smoke size
    assert "0.0%" in table  # no errors at concurrency 1 and 2
    latest = (out / "latest.md").read_text()
    assert "machine:" in latest and "Python" in latest
    assert "added over the direct call" in latest
    for target in ("p50 ≤ 50 µs", "p50 ≤ 0.7 ms", "p50 ≤ 1.5 ms", "≤ 100 MiB", "≤ 1.0 s"):
        assert target in table  # every target is printed with its verdict
    assert (out / "results.json").exists()
    assert not (out / "latency.png").exists()  # --smoke draws no PNG
