"""The client stub's seed interface against the real services on the simulator."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack
from uniwizard_client import (
    AsyncBackendRouter,
    BackendRouter,
    RouterError,
    RouterUnavailable,
    Task,
    fetch_health,
    set_enabled,
)
from uniwizard_client.tracing import call_metadata

SEED_ROUTES = {
    "Read the file notes/todo.md and tell me what's on it": "local",
    "Analyze the trade-offs between event sourcing and CRUD for our inventory service": "claude",
    "Who was the first emperor of Rome?": "gpt",
    "Quick — one word: capital of Peru?": "grok",
}
ROME = "Who was the first emperor of Rome?"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_seed_interface_route_call_and_fallback(threaded_stack: Stack) -> None:
    with BackendRouter(threaded_stack.router.target, deadline=20) as router:
        # route(task) -> str, for the seed's tasks
        assert {text: router.route(text) for text in SEED_ROUTES} == SEED_ROUTES

        # decide(): the reasons, the chain, nothing skipped on a healthy stack
        info = router.decide(ROME)
        assert info.backend == "gpt" and info.category == "knowledge"
        assert info.chain[0] == "gpt" and len(info.chain) > 1
        assert info.reasons and info.reasons[0].rule == "knowledge"

        # call(backend, prompt): pinned, no fallback
        assert router.call("claude", ROME)
        assert [r["path"].split("/")[1] for r in threaded_stack.sim.requests()] == ["claude"]

        # call_with_fallback(task), primary disabled -> the next backend of the chain answers
        set_enabled("gpt", False, by="test", reason="maintenance",
                    target=threaded_stack.registry.target)
        assert fetch_health(threaded_stack.registry.target)["gpt"].state == "disabled"
        decision = router.decide(ROME)
        assert decision.backend == info.chain[1]
        assert any(s.backend == "gpt" and s.reason == "disabled" for s in decision.skipped)
        assert router.call_with_fallback(ROME)
        result = router.dispatch(Task(ROME, system_prompt="Answer the task."))
        assert result.backend == info.chain[1]
        assert [a.backend for a in result.attempts] == [info.chain[1]]
        assert result.attempts[0].outcome == "success"
        assert result.cost_usd > 0 and result.trace_id
        assert threaded_stack.sim.requests("gpt") == []


def test_errors_carry_their_outcome_class(threaded_stack: Stack) -> None:
    threaded_stack.sim.add_fault("local", {"kind": "status", "status": 400})
    threaded_stack.sim.add_fault("grok", {"kind": "status", "status": 429, "retry_after": 60})
    with BackendRouter(threaded_stack.router.target, deadline=20) as router:
        with pytest.raises(RouterError) as err:
            router.call("local", "What's the status of the job?")
        assert err.value.outcome == "bad_request"
        assert [a.backend for a in err.value.attempts] == ["local"]
        assert err.value.attempts[0].outcome == "bad_request"
        assert err.value.trace_id

        with pytest.raises(RouterError) as err:
            router.call("grok", "Quick — one word: capital of Peru?")
        assert err.value.outcome == "rate_limited"

        with pytest.raises(RouterError) as err:  # rejected before routing
            router.route("   ")
        assert err.value.outcome == "bad_request" and not isinstance(err.value, RouterUnavailable)


def test_unreachable_router_is_router_unavailable() -> None:
    target = f"127.0.0.1:{_closed_port()}"
    with BackendRouter(target, deadline=5) as router, pytest.raises(RouterUnavailable) as err:
        router.route(ROME)
    assert err.value.outcome == "unavailable" and err.value.target == target
    with pytest.raises(RouterUnavailable):
        fetch_health(target, deadline=5)


def test_target_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIWIZARD_ROUTER_ADDR", raising=False)
    assert BackendRouter().target == "127.0.0.1:50052"
    monkeypatch.setenv("UNIWIZARD_ROUTER_ADDR", "10.0.0.7:6000")
    assert BackendRouter().target == "10.0.0.7:6000"
    assert BackendRouter("h:1").target == "h:1"
    with pytest.raises(ValueError):
        BackendRouter(deadline=0)


def test_metadata_carries_the_token_and_no_trace_without_an_sdk() -> None:
    assert call_metadata(None) == ()  # no SDK: nothing to propagate, nothing added
    assert call_metadata("s3cret") == (("authorization", "Bearer s3cret"),)


async def test_async_variant(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        async with AsyncBackendRouter(stack.router.target, deadline=20, token="t") as router:
            for text, backend in SEED_ROUTES.items():
                assert await router.route(text) == backend
            info = await router.decide(ROME)
            assert info.category == "knowledge"
            assert await router.call("claude", ROME)
            result = await router.dispatch(ROME)
            assert result.backend == "gpt" and result.text and result.cost_usd > 0
            assert await router.call_with_fallback(ROME)
            stack.sim.add_fault("local", {"kind": "status", "status": 400})
            with pytest.raises(RouterError) as err:
                await router.call("local", "What's the status of the job?")
            assert err.value.outcome == "bad_request"
        async with AsyncBackendRouter(f"127.0.0.1:{_closed_port()}", deadline=5) as down:
            with pytest.raises(RouterUnavailable):
                await down.dispatch(ROME)


def test_routers_do_not_share_a_lock(threaded_stack: Stack) -> None:
    a = BackendRouter(threaded_stack.router.target, deadline=10)
    b = BackendRouter(threaded_stack.router.target, deadline=10)
    assert a._conn._lock is not b._conn._lock
    with a._conn._lock:  # one router busy opening its channel does not hold up another
        done = threading.Event()
        worker = threading.Thread(target=lambda: (b.decide(ROME), done.set()))
        worker.start()
        assert done.wait(10), "b waited for a's lock"
        worker.join()
    assert a.decide(ROME).backend == "gpt"
    a.close()
    b.close()
