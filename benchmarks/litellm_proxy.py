"""LiteLLM proxy as the comparison point: installed once into ``benchmarks/.envs/litellm``.

It runs offline (local model cost map, telemetry off), one uvicorn worker, with one model that
points at the simulator's OpenAI-compatible base URL — the same endpoint the gpt backend uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.procs import clean_env, free_port, wait_http

ENV_DIR = Path(__file__).resolve().parent / ".envs" / "litellm"
MASTER_KEY = "sk-uniwizard-bench"
MODEL_NAME = "gpt-sim"
REQUIREMENT = "litellm[proxy]"


def executable() -> Path:
    return ENV_DIR / "bin" / "litellm"


def installed() -> bool:
    return executable().exists()


def install(log: Path) -> bool:
    """Create the venv and ``pip install litellm[proxy]`` (minutes, once). True when usable."""
    if installed():
        return True
    ENV_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        if not (ENV_DIR / "bin" / "python").exists():
            r = subprocess.run(
                [sys.executable, "-m", "venv", "--without-pip", str(ENV_DIR)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            if r.returncode != 0:
                # fall back to the interpreter the project venv was made from
                base = getattr(sys, "_base_executable", sys.executable)
                subprocess.run([base, "-m", "venv", str(ENV_DIR)], stdout=out, stderr=out)
            subprocess.run(
                [str(ENV_DIR / "bin" / "python"), "-m", "ensurepip", "--upgrade"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        r = subprocess.run(
            [str(ENV_DIR / "bin" / "python"), "-m", "pip", "install", "-q", REQUIREMENT],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return r.returncode == 0 and installed()


def version() -> str:
    try:
        out = subprocess.run(
            [str(ENV_DIR / "bin" / "python"), "-m", "pip", "show", "litellm"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "?"


@dataclass
class LiteLLMProxy:
    workdir: Path
    api_base: str  # the simulator's OpenAI-compatible base URL, e.g. http://127.0.0.1:P/gpt/v1
    model: str  # the upstream model name (the gpt backend's)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {MASTER_KEY}"}

    def start(self, timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL_NAME}\n"
            "    litellm_params:\n"
            f"      model: openai/{self.model}\n"
            f"      api_base: {self.api_base}\n"
            "      api_key: sim-key\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
            "  set_verbose: false\n"
            "general_settings:\n"
            f"  master_key: {MASTER_KEY}\n"
        )
        self.port = free_port()
        env = clean_env(
            {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY_DISABLED": "true",
                "LITELLM_MASTER_KEY": MASTER_KEY,
                "LITELLM_LOG": "ERROR",
                "NO_PROXY": "127.0.0.1,localhost",
                "HOME": str(self.workdir),  # keeps any cache files out of the real home
            }
        )
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "DATABASE_URL"):
            env.pop(var, None)
        log = open(self.workdir / "litellm.log", "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(executable()),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--num_workers",
                "1",
            ],
            env=env,
            cwd=str(self.workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        ok = wait_http(f"{self.url}/health/liveliness", t0 + timeout)
        if not ok:
            self.stop()
            raise RuntimeError(f"LiteLLM proxy did not start; see {self.workdir / 'litellm.log'}")
        self.startup_s = time.monotonic() - t0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (uvicorn may fork a worker)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out
