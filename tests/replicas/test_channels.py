"""Our channels over real gRPC servers (ServiceHost, the one service shape): calls spread round
robin over every replica a target names, a replica that drains (NOT_SERVING) or dies gets no new
calls, and a server with a maximum connection age makes its clients reconnect without failing a
call, a long stream included."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from uniwizard.balancing import CONNECTION_AGE_ENV
from uniwizard.net import aio_channel
from uniwizard.server import ServiceHost

TOKEN = "replica-test-token-0123456789abcdef"
# A method of its own on the Caller service's name: the channel health-checks that name.
WHO = "/uniwizard.v1.Caller/Who"
TICKS = "/uniwizard.v1.Caller/Ticks"


def _identity(b: bytes) -> bytes:
    return b


async def replica(index: int) -> ServiceHost:
    host = ServiceHost(f"replica{index}", "127.0.0.1:0", ["uniwizard.v1.Caller"])

    async def who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return f"{index} {context.peer()}".encode()

    async def ticks(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(int(request.decode())):
            await asyncio.sleep(0.1)
            yield str(i).encode()

    handlers = {
        "Who": grpc.unary_unary_rpc_method_handler(who, _identity, _identity),
        "Ticks": grpc.unary_stream_rpc_method_handler(ticks, _identity, _identity),
    }
    host.server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("uniwizard.v1.Caller", handlers),)
    )
    await host.start()
    return host


async def ask(channel: grpc.aio.Channel, n: int) -> Counter[str]:
    who = channel.unary_unary(WHO, _identity, _identity)
    seen: Counter[str] = Counter()
    for _ in range(n):
        answer = await who(b"", timeout=5, wait_for_ready=True)
        seen[answer.decode().split()[0]] += 1
    return seen


async def test_calls_spread_over_replicas_and_skip_draining_and_dead_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNIWIZARD_TOKEN", TOKEN)  # health checks pass without it; calls need it
    hosts = [await replica(i) for i in range(3)]
    target = ",".join(h.target for h in hosts)  # the shorthand: becomes ipv4:...
    channel = aio_channel(target, "tests", service="caller")
    try:
        spread = await ask(channel, 30)
        assert set(spread) == {"0", "1", "2"} and min(spread.values()) >= 5, spread

        await hosts[1].health.enter_graceful_shutdown()  # what SIGTERM does first
        await asyncio.sleep(0.3)  # the channel hears it on its health Watch stream
        assert set(await ask(channel, 20)) == {"0", "2"}

        await hosts[2].server.stop(None)  # gone without a word
        assert await ask(channel, 10) == Counter({"0": 10})
    finally:
        await channel.close()
        for h in hosts:
            await h.server.stop(None)


async def test_a_single_address_and_a_name_are_balanced_too() -> None:
    host = await replica(0)
    port = host.target.rsplit(":", 1)[1]
    # localhost may resolve to ::1 as well, where nothing listens: that address is skipped.
    for target in (host.target, f"dns:///localhost:{port}", f"localhost:{port}"):
        channel = aio_channel(target, "tests", service="caller")
        try:
            assert await ask(channel, 4) == Counter({"0": 4})
        finally:
            await channel.close()
    await host.server.stop(None)


async def test_connection_age_reconnects_clients_without_failing_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CONNECTION_AGE_ENV, "0.4")
    host = await replica(0)
    channel = aio_channel(host.target, "tests", service="caller")
    who = channel.unary_unary(WHO, _identity, _identity)
    ticks = channel.unary_stream(TICKS, _identity, _identity)
    try:
        stream = asyncio.create_task(_collect(ticks(b"15", timeout=10)))  # 1.5 s, past its age
        peers = set()
        for _ in range(15):
            peers.add((await who(b"", timeout=5, wait_for_ready=True)).decode().split()[1])
            await asyncio.sleep(0.1)
        assert len(peers) >= 2, f"one connection all along: {peers}"
        assert await stream == [str(i) for i in range(15)]  # in flight: allowed to finish
    finally:
        await channel.close()
        await host.server.stop(None)


async def _collect(call: AsyncIterator[bytes]) -> list[str]:
    return [m.decode() async for m in call]
