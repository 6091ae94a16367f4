"""The short soak: faults, caller and registry SIGKILLed and restarted, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_under_faults_and_kills(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/soak.py",
            "--duration",
            "15",
            "--rate",
            "8",
            "--check",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    assert r["caller_restarts"] >= 1 and r["registry_restarts"] >= 1
    assert r["late"] == 0 and r["untyped_errors"] == []
    assert r["ledger_rows_sent"] == r["simulator_attempts"] > 0
    assert r["answered"] > 0 and r["recovered_after_s"] is not None
    assert set(r["exit_codes"].values()) == {0}
