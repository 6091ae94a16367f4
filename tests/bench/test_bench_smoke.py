"""The benchmark runs end to end at a tiny size: separate processes, a table, latest.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_ROWS = (
    "route decision (in-process), classify + build_chain",
    "Route over gRPC",
    "direct httpx → simulator",
    "Dispatch router → caller → simulator",
    "Dispatch overhead",
    "startup: spawn → all services SERVING",
    "Dispatch req/s",
    "simulator direct req/s",
    "CPU per Dispatch request",
    "router_svc",
    "caller_svc",
    "registry_svc",
    "exit codes on SIGTERM: router 0, caller 0, registry 0, sim 0",
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
    assert "Dispatch overhead" in latest
    assert (out / "results.json").exists()
    assert not (out / "latency.png").exists()  # --smoke draws no PNG
