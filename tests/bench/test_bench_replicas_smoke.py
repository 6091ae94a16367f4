"""The replicas benchmark runs end to end at a tiny size: one caller on SQLite, and two routers
over two callers on a PostgreSQL ledger (the client balancing over both routers); a table with
every process's CPU, no errors, replicas.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_replicas_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.replicas", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for text in ("req/s per core", "PostgreSQL", "SQLite", "stack total", "load gen."):
        assert text in table, f"missing {text!r} in:\n{table}"
    rows = {
        (cells[0], cells[1]): cells
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| setup")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert set(rows) == {
        ("1 router, 1 caller", "SQLite"),
        ("2 routers, 2 callers", "PostgreSQL"),
    }, rows
    for cells in rows.values():
        errors, of = cells[4].split(" of ")
        assert errors == "0" and int(of) > 0, cells
    two = rows[("2 routers, 2 callers", "PostgreSQL")]
    assert two[5].count("+") == 1 and two[6].count("+") == 1  # each replica measured
    assert two[8]  # PostgreSQL's CPU counted

    results = json.loads((out / "replicas.json").read_text())
    shares = results["setups"]["pg-2x2"]["caller_shares"]
    assert set(shares) == {"caller", "caller2"} and all(v > 0 for v in shares.values())
    codes = results["exit_codes"]
    assert all(code == 0 for c in codes.values() for code in c.values()), codes
    assert "machine:" in (out / "replicas.md").read_text()
