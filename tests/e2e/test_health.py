"""registry_svc against the simulator: breaker, probes, operator control, WatchHealth, reload."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import grpc
import pytest

from registry_svc.server import build_registry
from tests.stack import Stack, running_stack, task
from uniwizard.config_types import BackendConfig
from uniwizard.convert import health_from_pb, request_to_pb
from uniwizard.types import BackendHealth, HealthState
from uniwizard.v1 import caller_pb2, registry_pb2, registry_pb2_grpc


def fast_breaker(b: BackendConfig) -> BackendConfig:
    return dataclasses.replace(b, allowed_fails=3, cooldown_time=0.6, failure_window=60)


async def call(stack: Stack, backend: str, text: str = "Who was the first emperor of Rome?"):  # type: ignore[no-untyped-def]
    return await stack.caller_stub.Call(
        caller_pb2.CallRequest(backend=backend, request=request_to_pb(task(text).request)),
        timeout=20,
    )


async def health(stack: Stack, key: str) -> BackendHealth:
    status = await stack.registry_stub.GetBackend(
        registry_pb2.GetBackendRequest(key=key), timeout=5
    )
    return health_from_pb(status.health)


async def wait_state(
    stack: Stack, key: str, state: HealthState, timeout: float = 5
) -> BackendHealth:
    deadline = time.monotonic() + timeout
    while True:
        h = await health(stack, key)
        if h.state is state or time.monotonic() > deadline:
            return h
        await asyncio.sleep(0.02)


async def test_three_failures_open_the_breaker_then_one_trial_then_close(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tweak=fast_breaker) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 500}, times=3)
        for _ in range(2):
            await call(stack, "gpt")
        await asyncio.sleep(0.2)
        assert (await health(stack, "gpt")).state is not HealthState.COOLING_DOWN
        await call(stack, "gpt")
        h = await wait_state(stack, "gpt", HealthState.COOLING_DOWN)
        assert h.state is HealthState.COOLING_DOWN
        assert h.failures_in_window == 3
        # The router hears it through WatchHealth and routes around gpt.
        await stack.wait_router(lambda v: v.health["gpt"].state is HealthState.COOLING_DOWN)
        decision = await stack.route(task("Who was the first emperor of Rome?"))
        assert decision.backend != "gpt"
        assert any(s.backend == "gpt" and s.reason == "cooling_down" for s in decision.skipped)
        # After cooldown_time: half-open, and exactly one trial goes through.
        h = await wait_state(stack, "gpt", HealthState.HALF_OPEN)
        assert h.state is HealthState.HALF_OPEN
        grants = [
            (
                await stack.registry_stub.AcquireTrial(
                    registry_pb2.AcquireTrialRequest(key="gpt"), timeout=5
                )
            ).granted
            for _ in range(3)
        ]
        assert grants == [True, False, False]
        await call(stack, "gpt")  # the trial succeeds
        assert (await wait_state(stack, "gpt", HealthState.HEALTHY)).state is HealthState.HEALTHY


async def test_failed_trial_reopens(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tweak=fast_breaker) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 503}, times=4)
        for _ in range(3):
            await call(stack, "gpt")
        first = await wait_state(stack, "gpt", HealthState.COOLING_DOWN)
        await wait_state(stack, "gpt", HealthState.HALF_OPEN)
        await call(stack, "gpt")  # the trial fails
        again = await wait_state(stack, "gpt", HealthState.COOLING_DOWN)
        assert again.state is HealthState.COOLING_DOWN
        assert again.cooldown_until > first.cooldown_until


async def test_429_with_retry_after_keeps_the_backend_out(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tweak=fast_breaker) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 429, "retry_after": 7}, times=1)
        before = time.time()
        result = await call(stack, "gpt")
        assert result.retry_after_s == 7
        h = await wait_state(stack, "gpt", HealthState.COOLING_DOWN)
        assert h.state is HealthState.COOLING_DOWN
        assert h.cooldown_until >= before + 7


async def test_401_marks_the_backend_down_with_the_reason(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("claude", {"kind": "status", "status": 401}, times=1)
        await call(stack, "claude")
        h = await wait_state(stack, "claude", HealthState.DOWN)
        assert h.state is HealthState.DOWN
        assert "401" in h.reason and "auth" in h.reason


async def test_missing_key_marks_down_without_probing(tmp_path: Path) -> None:
    async with running_stack(tmp_path, missing_keys=("XAI_API_KEY",)) as stack:
        h = await health(stack, "grok")
        assert h.state is HealthState.DOWN
        assert "XAI_API_KEY" in h.reason
        assert not await stack.registry.prober.probe("grok")
        assert stack.sim.requests("grok") == []


async def test_a_closed_port_is_detected_by_the_next_probe(tmp_path: Path) -> None:
    def closed(b: BackendConfig) -> BackendConfig:
        return dataclasses.replace(b, url="http://127.0.0.1:9/v1") if b.key == "local" else b

    async with running_stack(tmp_path, tweak=closed) as stack:
        assert await stack.registry.prober.probe("gpt")
        assert not await stack.registry.prober.probe("local")
        h = await health(stack, "local")
        assert h.last_probe_ok is False
        assert h.failures_in_window == 1
        assert "connection" in h.reason or h.state is HealthState.UNKNOWN


async def test_a_cancelled_client_call_changes_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        before = await health(stack, "gpt")
        stack.sim.add_fault("gpt", {"kind": "hang"}, times=1)
        fut = stack.caller_stub.Call(
            caller_pb2.CallRequest(backend="gpt", request=request_to_pb(task("hi there").request)),
            timeout=20,
        )
        while not stack.sim.requests("gpt"):
            await asyncio.sleep(0.02)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        await asyncio.sleep(0.3)
        after = await health(stack, "gpt")
        assert (after.state, after.failures_in_window, after.last_outcome) == (
            before.state,
            before.failures_in_window,
            before.last_outcome,
        )


async def test_disabled_survives_a_registry_restart_and_router_keeps_routing_without_registry(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.set_enabled("claude", False, reason="billing review")
        await stack.wait_router(lambda v: v.health["claude"].state is HealthState.DISABLED)
        # The registry goes away; the router routes on its last snapshot.
        await stack.registry.stop(grace=0.5)
        await stack.wait_router(lambda v: not v.connected)
        t = task("Analyze the trade-offs between event sourcing and CRUD for our inventory service")
        decision = await stack.route(t)
        assert decision.category == "reasoning"
        assert decision.backend != "claude"
        assert any(s.backend == "claude" and s.reason == "disabled" for s in decision.skipped)
        result = await stack.dispatch(t)
        assert result.backend == decision.backend
        # A new registry on the same state file still has claude disabled, with who and why.
        again = await build_registry(
            stack.config_path, "127.0.0.1:0", state_path=str(tmp_path / "ops.json"), probes=False
        )
        await again.start()
        try:
            async with grpc.aio.insecure_channel(again.target) as ch:
                status = await registry_pb2_grpc.RegistryStub(ch).GetBackend(
                    registry_pb2.GetBackendRequest(key="claude"), timeout=5
                )
            h = health_from_pb(status.health)
            assert h.state is HealthState.DISABLED
            assert (h.disabled_by, h.disabled_reason) == ("test", "billing review")
        finally:
            await again.stop(grace=0.5)


@pytest.mark.links("grpc")  # in one process the registry cannot restart on its own
async def test_router_reconnects_to_a_restarted_registry(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        view = stack.router.view
        port = stack.registry.host.port
        await stack.registry.stop(grace=0.5)
        await stack.wait_router(lambda v: not v.connected)
        reborn = await build_registry(
            stack.config_path,
            f"127.0.0.1:{port}",
            state_path=str(tmp_path / "ops.json"),
            probes=False,
        )
        await reborn.start()
        try:
            await stack.wait_router(lambda v: v.connected, timeout=10)
            async with grpc.aio.insecure_channel(reborn.target) as ch:
                await registry_pb2_grpc.RegistryStub(ch).SetEnabled(
                    registry_pb2.SetEnabledRequest(key="kimi", enabled=False, by="t"), timeout=5
                )
            await stack.wait_router(lambda v: v.health["kimi"].state is HealthState.DISABLED)
            assert view.connected
        finally:
            await reborn.stop(grace=0.5)


async def test_reload_rejects_a_bad_file_and_keeps_serving(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        path = Path(stack.config_path)
        good = path.read_text()
        path.write_text(good.replace("provider: anthropic", "provider: antropic"))
        resp = await stack.registry_stub.Reload(registry_pb2.ReloadRequest(), timeout=5)
        assert not resp.ok
        assert "unknown provider 'antropic'" in resp.error
        listed = await stack.registry_stub.ListBackends(
            registry_pb2.ListBackendsRequest(), timeout=5
        )
        assert {b.backend.provider for b in listed.backends} >= {"anthropic"}
        result = await stack.dispatch(task("Who was the first emperor of Rome?"))
        assert result.text
        # A good change applies; unchanged backends keep their health.
        await stack.set_enabled("gpt", False)
        path.write_text(good.replace("max_context: 131072", "max_context: 65536"))
        resp = await stack.registry_stub.Reload(registry_pb2.ReloadRequest(), timeout=5)
        assert resp.ok, resp.error
        assert list(resp.changed) == ["grok"]
        assert (await health(stack, "gpt")).state is HealthState.DISABLED
        await stack.wait_router(lambda v: v.backends["grok"].max_context == 65536)
