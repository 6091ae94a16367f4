"""Stateless replicas as real processes: one router balancing over three callers (one SIGKILLed
mid-load), and two routers that keep routing on their last health snapshot while the registry is
down. Each caller has its own SQLite ledger here, which also shows which caller did what."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.replicas.procs import cluster, free_port
from uniwizard_client import (
    AsyncBackendRouter,
    RouteInfo,
    RouterError,
    fetch_health,
    set_enabled,
)

pytestmark = pytest.mark.slow

ROME = "Who was the first emperor of Rome?"  # knowledge: gpt first
DEADLINE_S = 10.0
# What a request may end in besides an answer: the router's typed failures, and the channel's
# own (no router reachable, the deadline passed).
TYPED = {
    "bad_request", "timeout", "network", "overloaded", "server_error", "rate_limited",
    "no_backend", "refusal", "empty", "truncated", "malformed", "unavailable", "cancelled",
}  # fmt: skip


class Load:
    """Requests through one client, each recorded: started, took, and what it ended in."""

    def __init__(self, router: AsyncBackendRouter):
        self.router = router
        self.ended: list[tuple[float, float, str]] = []  # (started, took, "answer"|outcome)
        self.untyped: list[str] = []

    async def one(self) -> None:
        started = time.monotonic()
        try:
            await self.router.dispatch(ROME, deadline=DEADLINE_S)
            end = "answer"
        except RouterError as err:
            end = err.outcome
            if err.outcome not in TYPED:
                self.untyped.append(str(err))
        except Exception as exc:  # anything else is a failure of the contract
            end = "untyped"
            self.untyped.append(repr(exc))
        self.ended.append((started, time.monotonic() - started, end))

    async def run(self, seconds: float, concurrency: int) -> None:
        stop = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < stop:
                await self.one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    def late(self) -> list[float]:
        return [took for _, took, _ in self.ended if took > DEADLINE_S + 1.0]


async def test_one_router_spreads_over_three_callers_and_survives_one_killed(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as c:
        registry = await c.registry("127.0.0.1:0").start()
        callers = [await c.caller(i, registry.target).start() for i in range(3)]
        # The shorthand list, as an operator would write it; becomes ipv4:a,b,c.
        router = await c.router(0, registry.target, ",".join(p.target for p in callers)).start()
        async with AsyncBackendRouter(router.target, deadline=DEADLINE_S) as client:
            load = Load(client)
            for _ in range(4):  # concurrently, so no caller is favoured by timing
                await asyncio.gather(*(load.one() for _ in range(6)))
            assert [end for _, _, end in load.ended] == ["answer"] * 24
            per_caller = [c.ledger_rows(i) for i in range(3)]
            assert sum(per_caller) == 24 and min(per_caller) >= 4, per_caller

            # Every provider call now takes 0.3 s, so each caller always has calls in flight.
            c.sim.add_fault("gpt", {"kind": "delay", "seconds": 0.3})
            running = asyncio.create_task(load.run(seconds=4.0, concurrency=9))
            await asyncio.sleep(1.5)
            killed_at, killed_wall = time.monotonic(), time.time()
            await callers[1].kill()
            await running

        assert load.untyped == [] and load.late() == []
        assert c.ledger_rows(1, "outcome = 'in_flight'") >= 1, "the kill hit no call in flight"
        after = [end for started, _, end in load.ended if started > killed_at + 0.5]
        assert len(after) >= 10 and set(after) == {"answer"}, Counter(after)
        # Every answer after the kill came from a survivor (the victim is dead): at least one
        # attempt in a survivor's ledger each.
        survivors_after = sum(c.ledger_rows(i, f"ts > {killed_wall + 0.5}") for i in (0, 2))
        assert survivors_after >= len(after)
        # No provider call without its ledger row; the dead caller's unfinished rows are all
        # the difference there can be (a row is committed before its request leaves).
        sent = sum(c.ledger_rows(i, "sent = 1") for i in range(3))
        assert 0 <= sent - c.provider_attempts() <= c.ledger_rows(1, "outcome = 'in_flight'")


async def test_routers_keep_routing_on_their_last_snapshot_while_the_registry_is_down(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as c:
        registry_addr = f"127.0.0.1:{free_port()}"  # the same address when it comes back
        registry = await c.registry(registry_addr).start()
        callers = ",".join([(await c.caller(i, registry_addr).start()).target for i in range(2)])
        routers = [await c.router(i, registry_addr, callers).start() for i in range(2)]
        both = ",".join(r.target for r in routers)

        await asyncio.to_thread(set_enabled, "gpt", False, reason="test", target=registry_addr)
        # Each router has the snapshot that says so, and routes to the next in the chain.
        nexts = {(await _until_gpt(r.target, skipped="disabled")).backend for r in routers}
        assert len(nexts) == 1 and None not in nexts and "gpt" not in nexts, nexts
        (instead,) = nexts

        await registry.kill()
        with pytest.raises(RouterError):
            await asyncio.to_thread(fetch_health, registry_addr, deadline=2)
        async with AsyncBackendRouter(both, deadline=DEADLINE_S) as client:
            results = await asyncio.gather(*(client.dispatch(ROME) for _ in range(12)))
        assert {r.backend for r in results} == {instead}  # not gpt: the snapshot, not the file
        for r in routers:  # each router, on its own, still knows
            async with AsyncBackendRouter(r.target, deadline=DEADLINE_S) as one:
                info = await one.decide(ROME)
                assert info.backend == instead
                assert ("gpt", "disabled") in {(s.backend, s.reason) for s in info.skipped}
                assert (await one.dispatch(ROME)).backend == instead

        await c.registry(registry_addr).start()  # back, with the operator's state from disk
        await asyncio.to_thread(set_enabled, "gpt", True, target=registry_addr)
        for r in routers:  # both follow it again
            await _until_gpt(r.target, skipped=None)


async def _until_gpt(router: str, *, skipped: str | None, timeout: float = 15.0) -> RouteInfo:
    """Wait until ``router`` skips gpt for ``skipped`` (None: routes ROME to gpt)."""
    stop = time.monotonic() + timeout
    async with AsyncBackendRouter(router, deadline=5) as client:
        while True:
            info = await client.decide(ROME)
            reasons = {s.backend: s.reason for s in info.skipped}
            if (reasons.get("gpt") == skipped) if skipped else info.backend == "gpt":
                return info
            assert time.monotonic() < stop, f"{router}: {info.backend}, skipped {reasons}"
            await asyncio.sleep(0.1)
