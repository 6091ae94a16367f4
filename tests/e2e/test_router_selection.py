"""Choosing the chain from outside: a category named by the caller (its chain, with fallback),
the catalog of categories and backends, and the ``answering`` event that says whose answer a
stream carries — on real dispatches through the three services and the simulator."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from router_svc.classify import requested
from router_svc.policy import load_policy
from router_svc.servicer import check_selection
from tests.e2e.test_fallback import failure_of, outcomes
from tests.stack import ROUTING_YAML, running_stack, task
from uniwizard.convert import health_state_from_pb, task_to_pb
from uniwizard.types import HealthState
from uniwizard.v1 import router_pb2

ROME = "Who was the first emperor of Rome?"  # knowledge → gpt first


def test_a_requested_category_is_taken_as_it_is_and_an_unknown_one_is_refused() -> None:
    policy = load_policy(ROUTING_YAML)
    cls = requested("reasoning", policy)
    assert cls.category == "reasoning"
    assert [str(r) for r in cls.reasons] == ["reasoning: category requested by the caller"]
    with pytest.raises(KeyError):
        requested("poetry", policy)
    assert check_selection("", "gpt", policy) is None
    assert check_selection("quick", "", policy) is None
    both = check_selection("quick", "gpt", policy)
    assert both is not None and "not both" in both
    unknown = check_selection("poetry", "", policy)
    assert unknown is not None and "'poetry'" in unknown and "reasoning" in unknown


async def test_dispatch_on_a_requested_category_walks_its_chain_with_fallback(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stub = stack.router_stub
        request = router_pb2.DispatchRequest(task=task_to_pb(task(ROME)), category="reasoning")
        result = await stub.Dispatch(request, timeout=20)
        assert result.decision.category == "reasoning"
        assert result.decision.chain[0] == "claude" and result.backend == "claude"
        assert result.decision.reasons[0].evidence == "category requested by the caller"

        stack.sim.add_fault("claude", {"kind": "status", "status": 503})
        result = await stub.Dispatch(request, timeout=20)
        assert outcomes(result)[0] == ("claude", "overloaded")
        assert result.backend == result.decision.chain[1] == "gpt"

        route = await stub.Route(
            router_pb2.RouteRequest(task=task_to_pb(task(ROME)), category="quick"), timeout=5
        )
        assert route.category == "quick" and route.chain[0] == "grok"


async def test_a_bad_selection_is_invalid_argument_naming_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stub = stack.router_stub
        for request, words in (
            (router_pb2.DispatchRequest(task=task_to_pb(task(ROME)), category="poetry"), "poetry"),
            (
                router_pb2.DispatchRequest(
                    task=task_to_pb(task(ROME)), category="quick", backend="gpt"
                ),
                "not both",
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Dispatch(request, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in (err.value.details() or "")
        assert stack.sim.requests() == []  # nothing was sent anywhere


async def test_the_catalog_lists_categories_in_policy_order_and_backends_with_health(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.set_enabled("grok", False, "maintenance")
        await stack.wait_router(
            lambda v: v.health.get("grok") is not None
            and v.health["grok"].state is HealthState.DISABLED
        )
        catalog = await stack.router_stub.Catalog(router_pb2.CatalogRequest(), timeout=5)
        policy = load_policy(ROUTING_YAML)
        assert [c.name for c in catalog.categories] == list(policy.names)
        assert catalog.default_category == policy.default
        private = next(c for c in catalog.categories if c.name == "private")
        assert private.private_only and list(private.prefer) == ["local"]
        assert [b.backend.key for b in catalog.backends] == list(stack.config.backends)
        states = {b.backend.key: health_state_from_pb(b.health.state) for b in catalog.backends}
        assert states["grok"] is HealthState.DISABLED
        grok = next(b for b in catalog.backends if b.backend.key == "grok")
        assert grok.health.disabled_reason == "maintenance"
        assert grok.backend.model == "grok-3-mini"


async def test_a_stream_says_which_backend_answers_before_its_first_text(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 503})
        call = stack.router_stub.DispatchStream(
            router_pb2.DispatchRequest(task=task_to_pb(task(ROME))), timeout=20
        )
        events = [ev async for ev in call]
        kinds = [str(e.WhichOneof("event")) for e in events]
        answering = kinds.index("answering")
        assert kinds[0] == "decision" and "attempt_failed" in kinds[:answering]
        assert kinds[answering + 1] == "text_delta" and kinds.count("answering") == 1
        assert events[answering].answering.backend == events[-1].done.backend == "claude"
        assert events[answering].answering.model == stack.config.backends["claude"].model

        # a failure before any text went out: no answering event
        stack.sim.clear_faults()
        stack.sim.add_fault("*", {"kind": "status", "status": 400, "message": "bad"})
        call = stack.router_stub.DispatchStream(
            router_pb2.DispatchRequest(task=task_to_pb(task(ROME)), backend="gpt"), timeout=20
        )
        code, failure = await failure_of(_drain(call))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and failure.attempts


async def _drain(call: object) -> None:
    async for ev in call:  # type: ignore[attr-defined]
        assert ev.WhichOneof("event") != "answering"
