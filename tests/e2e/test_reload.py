"""SIGHUP re-reads configuration in every service and never kills one."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest

from tests.stack import ROOT, SIM_KEY, sim_config, task
from uniwizard.convert import request_to_pb
from uniwizard.v1 import caller_pb2, caller_pb2_grpc
from uniwizard_sim.app import running_simulator


async def start(
    module: str, *args: str, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        "--address",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert "serving on" in line, line
    return proc, line.rsplit(" ", 1)[-1].strip()


async def test_sighup_reloads_the_caller_and_keeps_it_on_a_bad_file(tmp_path: Path) -> None:
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp_path)
        env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path))
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        proc, target = await start(
            "caller_svc",
            "--config",
            path,
            "--registry",
            "",
            "--ledger",
            str(tmp_path / "l.db"),
            env=env,
        )
        req = caller_pb2.CallRequest(backend="gpt", request=request_to_pb(task("Hi there").request))
        async with grpc.aio.insecure_channel(target) as ch:
            stub = caller_pb2_grpc.CallerStub(ch)
            before = await stub.Call(req, timeout=10)
            text = Path(path).read_text()
            Path(path).write_text(
                text.replace("cost_per_1k_input: 0.0025", "cost_per_1k_input: 0.005")
            )
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            after = await stub.Call(req, timeout=10)
            assert after.usage.input_tokens == before.usage.input_tokens
            assert after.cost_usd > before.cost_usd
            Path(path).write_text("backends: [")  # broken: the running config stays
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            still = await stub.Call(req, timeout=10)
            assert still.cost_usd == pytest.approx(after.cost_usd)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


@pytest.mark.parametrize(
    ("module", "extra"), [("router_svc", []), ("registry_svc", ["--no-probes"])]
)
async def test_sighup_never_kills_a_service(tmp_path: Path, module: str, extra: list[str]) -> None:
    env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path))
    proc, _ = await start(
        module, "--config", str(ROOT / "configs" / "backends.yaml"), *extra, env=env
    )
    proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert proc.returncode is None
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
