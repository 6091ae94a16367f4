"""The edge benchmark runs end to end at a tiny size (no LiteLLM: it is not a dev dependency)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_edge_benchmark_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.edge", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for row in (
        "direct → simulator (the same chat completion)",
        "edge → router → caller → simulator",
        "edge added latency",
        "LiteLLM comparison",
        "edge errors (all phases)",
        "exit codes on SIGTERM: stack 0, sim 0",
    ):
        assert row in table, f"missing {row!r} in:\n{table}"
    errors = next(line for line in table.splitlines() if "edge errors (all phases)" in line)
    assert [c.strip() for c in errors.split("|")[2:5]] == ["0", "0", "met"]
    levels = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert "1" in levels and "2" in levels
    results = json.loads((tmp_path / "edge.json").read_text())
    assert (
        results["edge_errors"] == 0 and results["seq"]["edge"]["ok"] == results["seq"]["edge"]["n"]
    )
    assert "# The HTTP edge against the LiteLLM proxy" in (tmp_path / "edge.md").read_text()
