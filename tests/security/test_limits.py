"""Bounded inputs: each limit rejects cleanly with INVALID_ARGUMENT naming it; bad input never
crashes a service."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.stack import running_stack, task
from uniwizard.convert import request_to_pb, task_to_pb
from uniwizard.limits import LimitsError, load_limits
from uniwizard.types import Attachment, BlindRequest, Message, Role, Task, ToolDef
from uniwizard.v1 import caller_pb2, router_pb2

LIMITS = {
    "UNIWIZARD_MAX_TASK_CHARS": "2000",
    "UNIWIZARD_MAX_MESSAGES": "3",
    "UNIWIZARD_MAX_ATTACHMENT_BYTES": "1000",
    "UNIWIZARD_MAX_ATTACHMENTS": "2",
    "UNIWIZARD_MAX_TOOLS": "2",
    "UNIWIZARD_MAX_DEADLINE_S": "30",
    "UNIWIZARD_MAX_MESSAGE_BYTES": "200000",
}


def req(
    text: str = "Who was the first emperor of Rome?",
    *,
    n: int = 1,
    attachments: tuple[Attachment, ...] = (),
    tools: int = 0,
) -> BlindRequest:
    msgs = [Message(Role.USER, text, attachments) for _ in range(n)]
    return BlindRequest(
        messages=tuple(msgs), tools=tuple(ToolDef(f"tool_{i}", "d", "{}") for i in range(tools))
    )


png = Attachment("a.png", "image/png", b"\x89PNG" + b"0" * 10)
CASES = [
    ("text", req("x" * 2500), "UNIWIZARD_MAX_TASK_CHARS"),
    ("messages", req(n=4), "UNIWIZARD_MAX_MESSAGES"),
    (
        "attachment size",
        req(attachments=(Attachment("a.png", "image/png", b"0" * 2000),)),
        "UNIWIZARD_MAX_ATTACHMENT_BYTES",
    ),
    ("attachments", req(attachments=(png, png, png)), "UNIWIZARD_MAX_ATTACHMENTS"),
    ("tools", req(tools=3), "UNIWIZARD_MAX_TOOLS"),
    ("media type", req(attachments=(Attachment("a", "picture", b"0"),)), "is not a media type"),
    (
        "tool schema",
        BlindRequest(messages=(Message(Role.USER, "hi"),), tools=(ToolDef("t", "", "{not json"),)),
        "not valid JSON",
    ),
    ("no messages", BlindRequest(messages=()), "at least one message"),
]


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in LIMITS.items():
        monkeypatch.setenv(k, v)


async def test_every_limit_rejects_cleanly_on_router_and_caller(
    tmp_path: Path, limited: None
) -> None:
    async with running_stack(tmp_path) as stack:
        for name, request, fragment in CASES:
            t = Task(request=request)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stack.dispatch(t)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert fragment in (err.value.details() or ""), (name, err.value.details())
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stack.caller_stub.Call(
                    caller_pb2.CallRequest(backend="gpt", request=request_to_pb(request)), timeout=5
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert fragment in (err.value.details() or ""), (name, err.value.details())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.dispatch(task("hello"), timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "UNIWIZARD_MAX_DEADLINE_S" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.dispatch(
                Task(request=req(attachments=(Attachment("big.png", "image/png", b"0" * 300_000),)))
            )
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stack.sim.requests() == []  # nothing reached a provider
        ok = await stack.dispatch(task("Who was the first emperor of Rome?"), timeout=20)
        assert ok.text  # and the services are still fine


async def test_malformed_protobuf_and_unknown_keys_get_clear_errors(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ch = stack.channel(stack.router)
        raw = ch.unary_unary(
            "/uniwizard.v1.Router/Dispatch",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(b"\xff\xff\xff\xff garbage", timeout=5)
        assert err.value.code() != grpc.StatusCode.OK
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.caller_stub.Call(
                caller_pb2.CallRequest(backend="nope", request=request_to_pb(req())), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "unknown backend 'nope'" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.router_stub.Dispatch(
                router_pb2.DispatchRequest(task=task_to_pb(task("hello")), backend="nope"),
                timeout=5,
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "nope" in (err.value.details() or "")
        assert (await stack.dispatch(task("Who was the first emperor of Rome?"))).text


def test_limit_settings_are_validated() -> None:
    with pytest.raises(LimitsError, match="UNIWIZARD_MAX_TOOLS='many': must be a number"):
        load_limits({"UNIWIZARD_MAX_TOOLS": "many"})
    with pytest.raises(LimitsError, match="must be positive"):
        load_limits({"UNIWIZARD_MAX_DEADLINE_S": "0"})
    assert load_limits({"UNIWIZARD_MAX_DEADLINE_S": "12.5"}).max_deadline_s == 12.5
