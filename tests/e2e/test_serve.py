"""``uniwizard serve --target ...`` as an operator runs it: real processes, real signals.

One process serving every component must look, from outside, exactly like separate ones: a port
each, each gRPC service with its own health status and reflection, the HTTP edge on its own.
SIGHUP reloads them all, SIGTERM drains them all (last started first), and a component that
crashes takes the whole process down with a message naming it rather than leaving a half-alive
stack. The same components split over processes reach each other over gRPC.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.stack import ROOT, SIM_KEY, sim_config, task, v1_policy
from uniwizard.convert import task_to_pb
from uniwizard.serve import COMPONENTS, StackOptions, address_variable, start_components
from uniwizard.server import Signals, serve_until_signal
from uniwizard.v1 import common_pb2, router_pb2, router_pb2_grpc
from uniwizard_sim.app import running_simulator

SERVICE_NAMES = {
    "registry": "uniwizard.v1.Registry",
    "caller": "uniwizard.v1.Caller",
    "router": "uniwizard.v1.Router",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """One ``uniwizard serve`` process; its output lines as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []

    async def read_until(self, needle: str, count: int = 1, timeout: float = 30) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while sum(needle in line for line in self.out) < count:
                line = (await self.proc.stdout.readline()).decode()
                assert line, "serve ended early:\n" + "".join(self.out)
                self.out.append(line)

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = await asyncio.wait_for(self.proc.communicate(), 30)
        self.out.append(out.decode())
        assert self.proc.returncode is not None
        return self.proc.returncode, "".join(self.out), err.decode()


@asynccontextmanager
async def operator_env(tmp: Path) -> AsyncIterator[tuple[dict[str, str], str]]:
    """The simulator, a backends file pointing at it, fixed ports and a data dir."""
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp)
        env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp))
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        for name in COMPONENTS:
            env[address_variable(name)] = f"127.0.0.1:{free_port()}"
        yield env, path


async def serve(env: dict[str, str], path: str, tmp: Path, target: str) -> Serve:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uniwizard.cli",
        "serve",
        "--target",
        target,
        "--config",
        path,
        "--policy",
        str(v1_policy(tmp)),
        "--no-probes",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    return Serve(proc)


async def health(target: str, service: str) -> int:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(resp.status)


async def think_http(addr: str, text: str) -> httpx.Response:
    """A chat completion through the HTTP edge at ``addr``, in OpenAI's protocol."""
    async with httpx.AsyncClient(timeout=20) as client:
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        return await client.post(f"http://{addr}/v1/chat/completions", json=body)


async def think(target: str, text: str) -> router_pb2.DispatchResult:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        request = router_pb2.DispatchRequest(task=task_to_pb(task(text)))
        return await stub.Dispatch(request, timeout=20)


async def test_one_process_serves_every_component_reloads_and_drains_them_all(
    tmp_path: Path,
) -> None:
    async with operator_env(tmp_path) as (env, path):
        proc = await serve(env, path, tmp_path, "all")
        await proc.read_until("serving on", count=4)
        edge = env["UNIWIZARD_HTTP_ADDR"]
        assert f"edge_svc serving on {edge}" in "".join(proc.out)
        answer = await think_http(edge, "Who was the first emperor of Rome?")
        assert answer.status_code == 200 and answer.headers["x-uniwizard-backend"] == "gpt"
        for name, service in SERVICE_NAMES.items():
            target = env[f"UNIWIZARD_{name.upper()}_ADDR"]
            assert f"{name}_svc serving on {target}" in "".join(proc.out)
            for svc in ("", service):  # the server's own status and the named service's
                assert await health(target, svc) == health_pb2.HealthCheckResponse.SERVING

        before = await think(env["UNIWIZARD_ROUTER_ADDR"], "Who was the first emperor of Rome?")
        assert before.backend == "gpt" and before.text and before.cost_usd > 0

        # SIGHUP: every component re-reads its files; the caller prices with the new price
        text = Path(path).read_text()
        assert "cost_per_1k_input: 0.0025" in text
        Path(path).write_text(text.replace("cost_per_1k_input: 0.0025", "cost_per_1k_input: 0.005"))
        proc.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        after = await think(env["UNIWIZARD_ROUTER_ADDR"], "Who was the first emperor of Rome?")
        assert after.backend == "gpt"
        assert after.cost_usd > before.cost_usd

        code, out, err = await proc.stop(signal.SIGTERM)
        assert code == 0, err
        assert "Traceback" not in err
        # one drain: the edge stops first, the registry last
        stops = [out.index(f"{n}_svc stopped") for n in ("edge", "router", "caller", "registry")]
        assert stops == sorted(stops), out
        # each component logged its own reload
        assert "reloaded routing policy" in err
        assert f"reloaded {path}" in err  # the caller
        assert "0 added, 1 changed, 0 removed" in err  # the registry


async def test_components_split_over_processes_reach_each_other_over_grpc(
    tmp_path: Path,
) -> None:
    async with operator_env(tmp_path) as (env, path):
        back = await serve(env, path, tmp_path, "registry,caller")
        await back.read_until("serving on", count=2)
        front = await serve(env, path, tmp_path, "router")
        await front.read_until("serving on")
        assert "registry_svc" not in "".join(front.out)  # only the router runs there
        answer = await think(env["UNIWIZARD_ROUTER_ADDR"], "Who was the first emperor of Rome?")
        assert answer.backend == "gpt" and answer.text
        assert answer.attempts[0].outcome == common_pb2.OUTCOME_CLASS_SUCCESS
        edge = await serve(env, path, tmp_path, "edge")  # the edge alone, the router over gRPC
        await edge.read_until("serving on")
        assert "router_svc" not in "".join(edge.out)
        http = await think_http(env["UNIWIZARD_HTTP_ADDR"], "Who was the first emperor of Rome?")
        assert http.status_code == 200 and http.json()["uniwizard"]["backend"] == "gpt"
        for p in (edge, front, back):
            code, _, err = await p.stop()
            assert code == 0, err


def test_an_unknown_target_is_a_usage_error_naming_the_choices(tmp_path: Path) -> None:
    import subprocess

    r = subprocess.run(
        [sys.executable, "-m", "uniwizard.cli", "serve", "--target", "routr"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path)),
    )
    assert r.returncode == 2, r.stderr
    assert "'routr'" in r.stderr and "registry, caller, router" in r.stderr


async def test_a_crashed_component_takes_the_whole_process_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_simulator() as sim:
        _, path = sim_config(sim.url, tmp_path)
        opts = StackOptions(
            path,
            policy_path=str(v1_policy(tmp_path)),
            addresses=dict.fromkeys(COMPONENTS, "127.0.0.1:0"),
            probes=False,
            ledger_path=str(tmp_path / "ledger.db"),
            state_path=str(tmp_path / "ops.json"),
        )
        services = await start_components(COMPONENTS, opts)
        caller = services[COMPONENTS.index("caller")]
        signals = Signals()

        async def lost() -> None:
            await asyncio.sleep(0.1)
            raise RuntimeError("the ledger's disk went away")

        caller.watch(asyncio.create_task(lost()))
        code = await asyncio.wait_for(serve_until_signal(services, signals, grace=1.0), 15)
        assert code == 1
        err = capsys.readouterr().err
        assert 'caller_svc crashed: RuntimeError("the ledger\'s disk went away")' in err
        assert "stopping every component of this process" in err
        for service in services:  # nobody is left half alive
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health(service.target, "")
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
