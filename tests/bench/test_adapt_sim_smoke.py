"""The routing-v2 simulation runs end to end at a tiny size and reports on every target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_adapt_simulation_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.adapt_sim",
            "--tasks",
            "40",
            "--scenario",
            "v1_wrong",
            "--scenario",
            "budget",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for policy in ("v1", "v2", "cheapest", "oracle"):
        assert f"| v1_wrong | {policy} |" in table and f"| budget | {policy} |" in table
    for row in (
        "v2's quality after 300 tasks / oracle's",
        "v2 - v1 quality after 300 tasks",
        "budget: spend against the cap",
        "decision time with adaptation on",
    ):
        assert row in table, f"missing {row!r} in:\n{table}"
    data = json.loads((out / "adapt.json").read_text())
    assert data["budget/v2"]["spent"]["claude"] <= 0.2  # the scenario's cap
    # the oracle is the ceiling: nothing beats it on its own hidden quality by much
    assert data["v1_wrong/oracle"]["quality"] >= data["v1_wrong/cheapest"]["quality"]
