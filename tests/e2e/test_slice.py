"""The thin vertical slice: route and think through the three real services and the simulator."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status

from tests.stack import running_stack, task
from uniwizard.convert import outcome_from_pb, task_to_pb
from uniwizard.providers.pricing import price
from uniwizard.types import Outcome, Usage
from uniwizard.v1 import router_pb2


async def test_think_hello_goes_router_caller_simulator_and_back(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        result = await stack.dispatch(task("Who was the first emperor of Rome?"))
        assert result.backend == "gpt"
        assert result.text
        assert [a.backend for a in result.attempts] == ["gpt"]
        assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
        gpt = stack.config.backends["gpt"]
        expected = price(gpt, Usage(result.usage.input_tokens, result.usage.output_tokens))
        assert result.cost_usd == pytest.approx(expected)
        seen = stack.sim.requests("gpt")
        assert [r["path"] for r in seen] == ["/gpt/v1/chat/completions"]


async def test_disabled_primary_falls_back_to_the_next_backend(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.set_enabled("gpt", False)
        await stack.wait_router(lambda v: v.health["gpt"].state.value == "disabled")
        t = task("Who was the first emperor of Rome?")
        decision = await stack.route(t)
        assert decision.backend != "gpt"
        assert any(s.backend == "gpt" and s.reason == "disabled" for s in decision.skipped)
        result = await stack.dispatch(t)
        assert result.backend == decision.chain[0]
        assert stack.sim.requests("gpt") == []


async def test_empty_task_is_a_clear_invalid_argument(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.dispatch(task("   "))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "empty" in err.value.details()


async def test_failure_carries_typed_details(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for key in stack.config.backends:
            if key != "local":
                await stack.set_enabled(key, False)
        stack.sim.add_fault("local", {"kind": "status", "status": 400})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.router_stub.Dispatch(
                router_pb2.DispatchRequest(
                    task=task_to_pb(task("What's the status of the job?")), backend="local"
                ),
                timeout=10,
            )
        status = rpc_status.from_call(err.value)
        assert status is not None
        failure = router_pb2.DispatchFailure()
        assert status.details[0].Unpack(failure)
        assert outcome_from_pb(failure.outcome) is Outcome.BAD_REQUEST
        assert [a.backend for a in failure.attempts] == ["local"]
