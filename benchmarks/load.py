"""The load generator: a separate process, asyncio only, one spec in (JSON on stdin), one JSON out.

Modes:

``seq``  one client, requests strictly one after another; with several targets the targets take
         turns (A B, B A, A B ...) so every target sees the same machine state. Per-target
         latencies in ms.
``conc`` ``concurrency`` workers, each sending back to back for ``duration`` seconds after a
         ``warmup``; throughput counts the requests completed inside the window.

Targets: ``dispatch`` / ``route`` (gRPC to the router, grpc.aio) and ``http`` (a JSON POST, e.g. a
chat completion straight to the simulator or through LiteLLM). A gRPC target with ``"balanced":
true`` gets the channel ``uniwizard_client`` makes (round robin over every router its address
names, each health-checked), for an address that lists several routers. Sequential HTTP uses
httpx (what caller_svc itself uses); concurrent HTTP uses aiohttp, the cheaper client, so the
load generator is not what limits a direct measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[], Awaitable[bool]]

DISPATCH_TEXT = "Who was the first emperor of Rome?"


class Target:
    def __init__(self, spec: dict[str, Any], concurrent: bool):
        self.spec = spec
        self.kind = spec["kind"]
        self.name = spec.get("name", self.kind)
        self.concurrent = concurrent
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self.errors: Counter[str] = Counter()

    async def open(self) -> Send:
        if self.kind in ("dispatch", "route"):
            return await self._open_grpc()
        if self.kind == "http":
            return await (self._open_aiohttp() if self.concurrent else self._open_httpx())
        raise ValueError(f"unknown target kind {self.kind!r}")

    async def close(self) -> None:
        for c in self._closers:
            await c()

    async def _open_grpc(self) -> Send:
        import grpc

        from benchmarks.seeds import seed_tasks
        from uniwizard.convert import task_to_pb
        from uniwizard.types import BlindRequest, Message, Role, Task
        from uniwizard.v1 import router_pb2, router_pb2_grpc

        if self.spec.get("balanced"):
            from uniwizard_client.channels import Endpoint

            channel = Endpoint.resolve("router", self.spec["address"]).aio_channel()
        else:
            channel = grpc.aio.insecure_channel(self.spec["address"])
        self._closers.append(channel.close)
        stub = router_pb2_grpc.RouterStub(channel)
        errors = self.errors
        if self.kind == "route":
            requests = [router_pb2.RouteRequest(task=task_to_pb(t)) for t in seed_tasks()]
            i = 0

            async def route() -> bool:
                nonlocal i
                req = requests[i % len(requests)]
                i += 1
                try:
                    resp = await stub.Route(req, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] += 1
                    return False
                return bool(resp.category)

            return route

        text = self.spec.get("text", DISPATCH_TEXT)
        task = Task(BlindRequest((Message(Role.USER, text),)))
        request = router_pb2.DispatchRequest(
            task=task_to_pb(task), backend=self.spec.get("pin", "")
        )
        expect = self.spec.get("expect_backend", "")

        async def dispatch() -> bool:
            try:
                resp = await stub.Dispatch(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                return False
            if not resp.text or (expect and resp.backend != expect):
                errors[f"unexpected answer from {resp.backend or '?'}"] += 1
                return False
            return True

        return dispatch

    async def _open_httpx(self) -> Send:
        import httpx

        client = httpx.AsyncClient(
            timeout=30.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self._closers.append(client.aclose)
        url, headers, body = self.spec["url"], self.spec.get("headers", {}), self.spec["json"]
        errors = self.errors

        async def post() -> bool:
            try:
                resp = await client.post(url, headers=headers, json=body)
                await resp.aread()
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                return False
            if resp.status_code != 200:
                errors[f"HTTP {resp.status_code}"] += 1
                return False
            return True

        return post

    async def _open_aiohttp(self) -> Send:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30), trust_env=False
        )
        self._closers.append(session.close)
        url, headers = (
            self.spec["url"],
            {
                **self.spec.get("headers", {}),
                "Content-Type": "application/json",
            },
        )
        data = json.dumps(self.spec["json"]).encode()
        errors = self.errors

        async def post() -> bool:
            try:
                async with session.post(url, data=data, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors[f"HTTP {resp.status}"] += 1
                        return False
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                return False
            return True

        return post


async def run_seq(spec: dict[str, Any]) -> dict[str, Any]:
    targets = [Target(t, concurrent=False) for t in spec["targets"]]
    sends = [await t.open() for t in targets]
    n, warmup = int(spec["n"]), int(spec.get("warmup", 0))
    lat: list[list[float]] = [[] for _ in targets]
    ok = [0] * len(targets)
    order = list(range(len(targets)))
    clock = time.perf_counter
    try:
        for i in range(warmup + n):
            for j in order if i % 2 == 0 else reversed(order):
                t0 = clock()
                good = await sends[j]()
                dt = (clock() - t0) * 1000.0
                if i >= warmup:
                    lat[j].append(dt)
                    ok[j] += good
    finally:
        for t in targets:
            await t.close()
    return {
        t.name: {"latencies_ms": lat[j], "ok": ok[j], "n": n, "errors": dict(t.errors)}
        for j, t in enumerate(targets)
    }


async def run_conc(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec["target"], concurrent=True)
    send = await target.open()
    conc = int(spec["concurrency"])
    duration = float(spec["duration"])
    warmup = float(spec.get("warmup", 0.0))
    max_requests = int(spec.get("max_requests", 0)) or None
    clock = time.perf_counter
    measuring = False
    stop = False
    window_end = float("inf")
    lat: list[float] = []
    ok = 0
    bad = 0
    done_all = 0  # every completed request, warm-up included (for CPU per request)

    async def worker() -> None:
        nonlocal ok, bad, stop, done_all
        while not stop:
            t0 = clock()
            good = await send()
            t1 = clock()
            done_all += 1
            if measuring and t1 <= window_end:
                lat.append((t1 - t0) * 1000.0)
                if good:
                    ok += 1
                else:
                    bad += 1
                if max_requests is not None and ok + bad >= max_requests:
                    stop = True
                    enough.set()

    enough = asyncio.Event()  # max_requests reached
    cpu0 = time.process_time()
    tasks = [asyncio.ensure_future(worker()) for _ in range(conc)]
    try:
        if warmup:
            await asyncio.sleep(warmup)
        target.errors.clear()
        measuring = True
        started = clock()
        window_end = started + duration
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout=duration)
        elapsed = min(clock(), window_end) - started
        stop = True
        await asyncio.wait(tasks, timeout=35)
    finally:
        stop = True
        for t in tasks:
            t.cancel()
        await target.close()
    return {
        "concurrency": conc,
        "elapsed_s": elapsed,
        "ok": ok,
        "errors": bad,
        "error_kinds": dict(target.errors),
        "latencies_ms": lat,
        "total_requests": done_all,
        "loadgen_cpu_s": time.process_time() - cpu0,
    }


def main() -> int:
    spec = json.loads(sys.stdin.read())
    mode = spec["mode"]
    runner = {"seq": run_seq, "conc": run_conc}[mode]
    # The load generator runs on uvloop like the services (asyncio's own loop roughly doubles a
    # gRPC aio round trip here); the direct baseline runs on the same loop, so the comparison
    # stays like for like.
    try:
        import uvloop

        result = uvloop.run(runner(spec))
    except ImportError:
        result = asyncio.run(runner(spec))
    out = spec.get("out")
    if out:
        with open(out, "w") as f:
            json.dump(result, f)
    else:
        sys.stdout.write(json.dumps(result))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
