"""Identity protection fails closed: a caller whose soul file cannot be read refuses to start —
exit code 2, one line on stderr naming the file, no traceback — instead of running unprotected."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

import pytest

from tests.stack import BACKENDS_YAML, ROOT
from uniwizard.config import dump_config, load_config


def config_with_soul(tmp: Path, soul: Path) -> Path:
    config = load_config(BACKENDS_YAML)
    assert config.identity is not None
    identity = dataclasses.replace(config.identity, soul_files=(str(soul),))
    path = tmp / "backends.yaml"
    path.write_text(dump_config(dataclasses.replace(config, identity=identity)))
    return path


async def start_caller(config: Path, tmp: Path) -> tuple[int, str, str]:
    env = {**os.environ, "UNIWIZARD_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "caller_svc",
        "--config",
        str(config),
        "--address",
        "127.0.0.1:0",
        "--registry",
        "",
        "--ledger",
        str(tmp / "ledger.db"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("the caller started (and kept serving) without identity protection")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def missing(tmp: Path) -> Path:
    return tmp / "no-such-soul.md"


def directory(tmp: Path) -> Path:
    (tmp / "soul.md").mkdir()
    return tmp / "soul.md"


def empty(tmp: Path) -> Path:
    (tmp / "soul.md").write_text("")
    return tmp / "soul.md"


def blank(tmp: Path) -> Path:
    (tmp / "soul.md").write_text("  \n\t\n")
    return tmp / "soul.md"


CASES = {
    "missing": (missing, "does not exist"),
    "directory": (directory, "is a directory"),
    "empty": (empty, "is empty"),
    "blank": (blank, "is empty"),
}


async def _refused(tmp: Path, name: str) -> None:
    make, why = CASES[name]
    tmp = tmp / name
    tmp.mkdir()
    soul = make(tmp)
    code, out, err = await start_caller(config_with_soul(tmp, soul), tmp)
    assert code == 2, (name, out, err)
    assert "Traceback" not in err and "Traceback" not in out, name
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, (name, err)
    (line,) = lines
    assert str(soul) in line, (name, line)
    assert why in line, (name, line)
    assert "identity" in line, (name, line)  # says what is at stake, not only a file problem
    assert not (tmp / "ledger.db").exists(), name  # failed before doing anything


async def _starts(tmp: Path) -> None:
    """Control: the same configuration with a readable soul file starts and serves."""
    tmp = tmp / "control"
    tmp.mkdir()
    soul = tmp / "soul.md"
    soul.write_text((ROOT / "configs" / "soul.md").read_text("utf-8"), "utf-8")
    env = {**os.environ, "UNIWIZARD_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "caller_svc",
        "--config",
        str(config_with_soul(tmp, soul)),
        "--address",
        "127.0.0.1:0",
        "--registry",
        "",
        "--ledger",
        str(tmp / "ledger.db"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(400):  # the ledger is created once startup passed the identity check
            if (tmp / "ledger.db").exists() or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert proc.returncode is None, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
        assert (tmp / "ledger.db").exists()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def test_caller_refuses_to_start_with_an_unreadable_soul_file(tmp_path: Path) -> None:
    """Missing file, a directory, an empty file, a blank file — and a control that starts.
    The five processes run side by side to keep the test short."""
    results = await asyncio.gather(
        *(_refused(tmp_path, name) for name in CASES), _starts(tmp_path), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
