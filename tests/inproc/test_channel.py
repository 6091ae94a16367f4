"""The in-process channel against the real services: every call made through it ends exactly as
the same call over a real gRPC channel does (the response, or the code, details and trailing
metadata), and deadlines, cancellation and a stopped server behave as gRPC's do.

Each comparison makes the call both ways on one running stack; the network way is the
reference.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer
from grpc_status import rpc_status

from tests.stack import Stack, running_stack, task
from uniwizard.convert import request_to_pb, task_to_pb
from uniwizard.inproc import InProcessChannel, LocalServer
from uniwizard.net import local_channel
from uniwizard.server import ServiceHost
from uniwizard.v1 import caller_pb2, caller_pb2_grpc, router_pb2, router_pb2_grpc

pytestmark = pytest.mark.links("inproc")

ROME = "Who was the first emperor of Rome?"


def call_request(backend: str = "gpt", text: str = ROME) -> caller_pb2.CallRequest:
    return caller_pb2.CallRequest(backend=backend, request=request_to_pb(task(text).request))


async def outcome(make: Callable[[], Awaitable[Any]]) -> tuple[str, Any]:
    """("ok", response) or ("error", (code, details, trailing metadata as a dict))."""
    try:
        return "ok", await make()
    except grpc.aio.AioRpcError as exc:
        return "error", (exc.code(), exc.details(), dict(exc.trailing_metadata() or ()))


def ledger_outcomes(stack: Stack) -> list[str]:
    with closing(sqlite3.connect(stack.tmp / "ledger.db")) as db:
        return [r[0] for r in db.execute("SELECT outcome FROM attempts ORDER BY id")]


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_a_typed_dispatch_failure_survives_in_process(tmp_path: Path) -> None:
    """The router's DispatchFailure travels in the trailing metadata: same code, details and
    packed failure as over the network."""
    async with running_stack(tmp_path) as stack:
        request = router_pb2.DispatchRequest(
            task=task_to_pb(task("my secret diary", private=True)), backend="gpt"
        )
        local = router_pb2_grpc.RouterStub(local_channel(stack.router.host.local, "tests"))
        here = await outcome(lambda: local.Dispatch(request, timeout=10))
        there = await outcome(lambda: stack.router_stub.Dispatch(request, timeout=10))
    assert here[0] == there[0] == "error"
    code, details, _ = here[1]
    assert (code, details) == there[1][:2]
    assert code == grpc.StatusCode.UNAVAILABLE
    failures = []
    for _, (c, d, t) in (here, there):
        error = grpc.aio.AioRpcError(c, grpc.aio.Metadata(), grpc.aio.Metadata(*t.items()), d)
        status = rpc_status.from_call(error)
        assert status is not None
        failure = router_pb2.DispatchFailure()
        assert status.details[0].Unpack(failure)
        failures.append(failure)
    assert failures[0].outcome == failures[1].outcome
    assert failures[0].message == failures[1].message


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (caller_pb2.CallRequest(backend="nope"), grpc.StatusCode.NOT_FOUND),
        (caller_pb2.CallRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_an_aborted_call_has_the_same_status_both_ways(
    tmp_path: Path, request_: caller_pb2.CallRequest, code: grpc.StatusCode
) -> None:
    async with running_stack(tmp_path) as stack:
        local = caller_pb2_grpc.CallerStub(local_channel(stack.caller.host.local, "tests"))
        here = await outcome(lambda: local.Call(request_, timeout=5))
        there = await outcome(lambda: stack.caller_stub.Call(request_, timeout=5))
    assert here == there
    assert here[1][0] == code


async def test_an_unexpected_error_is_unknown_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(tmp_path) as stack:

        async def broken(*args: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(stack.caller.core, "call", broken)
        local = caller_pb2_grpc.CallerStub(local_channel(stack.caller.host.local, "tests"))
        here = await outcome(lambda: local.Call(call_request(), timeout=5))
        there = await outcome(lambda: stack.caller_stub.Call(call_request(), timeout=5))
    assert here[1][:2] == there[1][:2]
    assert here[1][0] == grpc.StatusCode.UNKNOWN
    assert "RuntimeError" in here[1][1] and "a bug" in here[1][1]


async def test_the_answer_is_the_same_message_without_serialization(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        local = caller_pb2_grpc.CallerStub(local_channel(stack.caller.host.local, "tests"))
        here = await local.Call(call_request(), timeout=10)
        there = await stack.caller_stub.Call(call_request(), timeout=10)
    assert isinstance(here, caller_pb2.CallResult)
    assert (here.backend, here.outcome, here.text) == (there.backend, there.outcome, there.text)
    assert here.usage == there.usage and here.cost_usd == there.cost_usd


async def test_the_deadline_ends_the_call_and_cancels_the_handler() -> None:
    ended: list[str] = []

    async def slow(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        return request

    async with serving_both_ways(grpc.unary_unary_rpc_method_handler(slow)) as (local, remote):
        request = wrappers_pb2.StringValue(value="x")
        here = await outcome(lambda: local(request, timeout=0.3))
        there = await outcome(lambda: remote(request, timeout=0.3))
        await wait_until(lambda: len(ended) == 2)
    assert here[0] == there[0] == "error"
    assert here[1][:2] == there[1][:2] == (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    assert ended == ["cancelled", "cancelled"]


async def test_abort_with_trailing_metadata_is_the_same_both_ways() -> None:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION, "not now", (("x-why-bin", b"\x00\x01"),)
        )

    async with serving_both_ways(grpc.unary_unary_rpc_method_handler(refuse)) as (local, remote):
        request = wrappers_pb2.StringValue(value="x")
        here = await outcome(lambda: local(request, timeout=5))
        there = await outcome(lambda: remote(request, timeout=5))
    assert here == there
    assert here == (
        "error",
        (grpc.StatusCode.FAILED_PRECONDITION, "not now", {"x-why-bin": b"\x00\x01"}),
    )


async def test_time_remaining_counts_down_to_the_deadline(tmp_path: Path) -> None:
    seen: list[float | None] = []

    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        seen.append(context.time_remaining())
        await asyncio.sleep(0.2)
        seen.append(context.time_remaining())
        return request

    server = local_server(grpc.unary_unary_rpc_method_handler(behaviour))
    stub = InProcessChannel(server, "tests").unary_unary("/test.Echo/Call")
    await stub(wrappers_pb2.StringValue(value="x"), timeout=2.0)
    await stub(wrappers_pb2.StringValue(value="x"))
    first, later, unbounded, still = seen
    assert first is not None and later is not None
    assert 1.5 < first <= 2.0 and first - later >= 0.15
    assert unbounded is None and still is None


async def test_cancelling_the_call_cancels_the_handler(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "hang"}, times=2)
        local = caller_pb2_grpc.CallerStub(local_channel(stack.caller.host.local, "tests"))
        call = local.Call(call_request(), timeout=30)
        await wait_until(lambda: len(stack.sim.requests("gpt")) == 1)
        assert call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert call.cancelled()
        assert await call.code() == grpc.StatusCode.CANCELLED
        await wait_until(lambda: ledger_outcomes(stack) == ["cancelled"])

        # cancelling the task that awaits the call cancels the call too
        waiting = asyncio.ensure_future(local.Call(call_request(), timeout=30))
        await wait_until(lambda: len(stack.sim.requests("gpt")) == 2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await wait_until(lambda: ledger_outcomes(stack) == ["cancelled", "cancelled"])


async def test_a_stream_read_in_process_and_one_left_early(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        local = caller_pb2_grpc.CallerStub(local_channel(stack.caller.host.local, "tests"))
        here = [ev async for ev in local.CallStream(call_request(), timeout=10)]
        there = [ev async for ev in stack.caller_stub.CallStream(call_request(), timeout=10)]
        assert [ev.WhichOneof("event") for ev in here] == [ev.WhichOneof("event") for ev in there]
        assert here[-1].result.outcome == there[-1].result.outcome
        assert "".join(ev.text_delta for ev in here) == "".join(ev.text_delta for ev in there)

        stack.sim.add_fault("gpt", {"kind": "stall", "after_chunks": 1}, times=1)
        call = local.CallStream(call_request(text="Tell me a long story please"), timeout=30)
        await wait_until(lambda: len(stack.sim.requests("gpt")) == 3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call.read()
        # the caller's stream was closed in its own task: the attempt is recorded as cancelled
        await wait_until(lambda: ledger_outcomes(stack)[-1] == "cancelled")


async def test_a_stopped_server_is_unavailable_and_wait_for_ready_waits(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        health = health_pb2_grpc.HealthStub(local_channel(stack.registry.host.local, "tests"))
        ok = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert ok.status == health_pb2.HealthCheckResponse.SERVING
        await stack.registry.stop(grace=0.5)
        request = health_pb2.HealthCheckRequest(service="")
        kind, (code, details, _) = await outcome(lambda: health.Check(request, timeout=5))
        assert (kind, code) == ("error", grpc.StatusCode.UNAVAILABLE)
        assert "registry_svc is not serving" in details
        kind, (code, _, _) = await outcome(
            lambda: health.Check(request, timeout=0.3, wait_for_ready=True)
        )
        assert (kind, code) == ("error", grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_stopping_lets_calls_in_flight_finish_within_the_grace_then_cancels_them() -> None:
    release = asyncio.Event()

    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await release.wait()
        return request

    server = local_server(grpc.unary_unary_rpc_method_handler(behaviour))
    stub = InProcessChannel(server, "tests").unary_unary("/test.Echo/Call")
    first = asyncio.ensure_future(stub(wrappers_pb2.StringValue(value="a"), timeout=10))
    second = asyncio.ensure_future(stub(wrappers_pb2.StringValue(value="b"), timeout=10))
    await asyncio.sleep(0.05)
    stopping = asyncio.ensure_future(server.stop(grace=0.3))
    await asyncio.sleep(0.05)
    late = await outcome(lambda: stub(wrappers_pb2.StringValue(value="c"), timeout=10))
    assert late[0] == "error" and late[1][0] == grpc.StatusCode.UNAVAILABLE
    await stopping  # nobody released them: cancelled after the grace
    for call in (first, second):
        kind, (code, details, _) = await outcome(lambda c=call: c)  # type: ignore[misc]
        assert (kind, code, details) == ("error", grpc.StatusCode.UNAVAILABLE, "the server stopped")


async def test_the_handler_runs_in_a_context_of_its_own() -> None:
    mark: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")
    seen: list[str] = []

    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        seen.append(mark.get())
        mark.set("server")
        seen.append(dict(context.invocation_metadata() or ())["x-test"])
        return request

    server = local_server(grpc.unary_unary_rpc_method_handler(behaviour))
    stub = InProcessChannel(server, "tests").unary_unary("/test.Echo/Call")
    mark.set("client")
    await stub(wrappers_pb2.StringValue(value="x"), metadata=(("x-test", "yes"),))
    assert seen == ["unset", "yes"]
    assert mark.get() == "client"


async def test_every_call_shape_works_in_process() -> None:
    async def total(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return wrappers_pb2.Int64Value(value=sum([r.value async for r in requests]))

    server = local_server(
        grpc.stream_unary_rpc_method_handler(total),
        ReflectionServicer(["grpc.health.v1.Health"]),
    )
    channel = InProcessChannel(server, "tests")
    summed = await channel.stream_unary("/test.Echo/Call")(
        iter([wrappers_pb2.Int64Value(value=n) for n in (1, 2, 3)]), timeout=5
    )
    assert summed.value == 6
    written = channel.stream_unary("/test.Echo/Call")(timeout=5)
    for n in (4, 5):
        await written.write(wrappers_pb2.Int64Value(value=n))
    await written.done_writing()
    assert (await written).value == 9

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = [s.name async for a in answers for s in a.list_services_response.service]
    assert names == ["grpc.health.v1.Health"]

    missing = await outcome(lambda: channel.unary_unary("/test.Nope/Call")(b"", timeout=5))
    assert missing == ("error", (grpc.StatusCode.UNIMPLEMENTED, "Method not found!", {}))


async def test_a_closed_channel_cancels_its_calls_and_takes_no_more() -> None:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await asyncio.sleep(30)
        return request

    server = local_server(grpc.unary_unary_rpc_method_handler(behaviour))
    channel = InProcessChannel(server, "tests")
    call = channel.unary_unary("/test.Echo/Call")(wrappers_pb2.StringValue(), timeout=60)
    await asyncio.sleep(0.05)
    await channel.close()
    with pytest.raises(asyncio.CancelledError):
        await call
    with pytest.raises(grpc.aio.UsageError):
        channel.unary_unary("/test.Echo/Call")(wrappers_pb2.StringValue(), timeout=1)
    assert channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN


@asynccontextmanager
async def serving_both_ways(
    handler: grpc.RpcMethodHandler,
) -> AsyncIterator[tuple[Callable[..., Any], Callable[..., Any]]]:
    """A real ServiceHost serving /test.Echo/Call: its in-process and its network face."""
    host = ServiceHost("test_svc", "127.0.0.1:0", ["test.Echo"])
    host.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Echo", {"Call": handler})]
    )
    await host.start()
    channel = grpc.aio.insecure_channel(host.target)
    try:
        local = InProcessChannel(host.local, "tests").unary_unary("/test.Echo/Call")
        remote = channel.unary_unary(
            "/test.Echo/Call",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        yield local, remote
    finally:
        await channel.close()
        await host.stop(0.5)


def local_server(handler: grpc.RpcMethodHandler, *servicers: Any) -> LocalServer:
    """A LocalServer with one test method (/test.Echo/Call) and the given aio servicers."""
    server = LocalServer("test_svc")
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Echo", {"Call": handler})]
    )
    for servicer in servicers:
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[arg-type]
    server.start()
    return server
