"""Routing v2 end to end, on the real services and the simulator: ratings stored beside the
attempt that answered and learned by the registry, routes that change with them (and say why),
and budgets that skip a backend before its cap is crossed."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import grpc
import pytest
import yaml

from tests.stack import ROUTING_YAML, Stack, running_stack, task
from uniwizard.config_types import BackendConfig, Budget
from uniwizard.types import Task
from uniwizard.v1 import common_pb2, registry_pb2

ROME = "Who was the first emperor of Rome?"  # knowledge: gpt first, then claude


async def rate(stack: Stack, **kw: object) -> common_pb2.RateResponse:
    return await stack.router_stub.Rate(common_pb2.RateRequest(**kw), timeout=10)  # type: ignore[arg-type]


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def ratings_rows(stack: Stack) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(stack.tmp / "ledger.db")) as db:
        return db.execute(
            "SELECT r.request_id, r.backend, r.category, r.score, r.label, a.outcome, a.backend"
            " FROM ratings r JOIN attempts a ON a.id = r.attempt_id ORDER BY r.id"
        ).fetchall()


async def test_a_rating_is_stored_beside_the_answer_and_learned(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 500}, times=2)
        answered = await stack.dispatch(task(ROME))  # gpt fails twice, claude answers
        assert answered.backend == "claude" and len(answered.attempts) == 3
        r = await rate(stack, request_id=answered.request_id, score=0.8, label="great")
        assert (r.backend, r.category, r.score, r.label) == ("claude", "knowledge", 0.8, "great")
        # beside the attempt that answered, not the failed ones
        assert ratings_rows(stack) == [
            (answered.request_id, "claude", "knowledge", 0.8, "great", "success", "claude")
        ]
        stars = await stack.dispatch(task(ROME))
        by_trace = await rate(stack, trace_id=stars.trace_id, score=4, scale=1)  # 4 of 5 stars
        assert by_trace.request_id == stars.request_id and by_trace.score == 0.75

        async def learned() -> dict[tuple[str, str], common_pb2.BackendStats]:
            resp = await stack.registry_stub.Stats(registry_pb2.StatsRequest(), timeout=5)
            return {(s.category, s.backend): s for s in resp.stats}

        table: dict[tuple[str, str], common_pb2.BackendStats] = {}

        async def wait_learned() -> None:
            nonlocal table
            while True:
                table = await learned()
                claude = table.get(("knowledge", "claude"))
                if claude is not None and claude.ratings > 0.9:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(wait_learned(), 10)
        assert table[("knowledge", "claude")].rated_quality == pytest.approx(0.8)
        assert table[("knowledge", "gpt")].outcomes["server_error"] == pytest.approx(2, rel=0.1)
        assert table[("knowledge", "gpt")].success_rate > 0  # the second dispatch answered
        assert table[("knowledge", "claude")].latency_p50_ms > 0
        # ... and every router follows it on the health stream
        await stack.wait_router(lambda v: ("knowledge", "claude") in v.stats)


@pytest.mark.parametrize(
    ("request_kw", "code", "fragment"),
    [
        ({"request_id": "no-such-request", "score": 0.5}, "NOT_FOUND", "no answered request"),
        ({"score": 0.5}, "INVALID_ARGUMENT", "request_id (or trace_id) is required"),
        ({"request_id": "x", "score": 1.5}, "INVALID_ARGUMENT", "score must be from 0 to 1"),
        (
            {"request_id": "x", "score": 0.5, "label": "it was totally wrong"},
            "INVALID_ARGUMENT",
            "label must be a short token",
        ),
    ],
)
async def test_bad_ratings_are_refused_and_name_the_problem(
    tmp_path: Path, request_kw: dict[str, object], code: str, fragment: str
) -> None:
    async with running_stack(tmp_path) as stack:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rate(stack, **request_kw)
        assert err.value.code().name == code and fragment in (err.value.details() or "")
        assert ratings_rows(stack) == []


async def test_ratings_are_final(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        answered = await stack.dispatch(task(ROME))
        await rate(stack, request_id=answered.request_id, score=0.2, label="wrong")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rate(stack, request_id=answered.request_id, score=1.0)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "was rated 0.20" in (err.value.details() or "")
        assert [row[3] for row in ratings_rows(stack)] == [0.2]


def adaptive_policy(tmp: Path) -> Path:
    """The shipped policy with no exploration (deterministic) and a small min_count."""
    data = yaml.safe_load(ROUTING_YAML.read_text(encoding="utf-8"))
    data["adapt"] = {
        "weights": {"quality": 1.0, "latency": 0.0, "cost": 0.0},
        "min_count": 3,
        "explore": 0.0,
    }
    out = tmp / "routing-adaptive.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


async def test_the_agents_ratings_change_the_route_and_the_route_says_why(tmp_path: Path) -> None:
    async with running_stack(tmp_path, policy=adaptive_policy(tmp_path)) as stack:
        before = await stack.route(task(ROME))
        assert before.backend == "gpt" and not [r for r in before.reasons if r.rule == "adapt"]
        for backend, score in (("gpt", 0.1), ("claude", 0.95)):
            for _ in range(4):
                answered = await stack.dispatch(task(ROME), backend=backend)
                await rate(stack, request_id=answered.request_id, score=score)
        await stack.wait_router(
            lambda v: (
                v.stats.get(("knowledge", "claude")) is not None
                and v.stats[("knowledge", "claude")].ratings >= 3.5
                and v.stats[("knowledge", "gpt")].ratings >= 3.5
            )
        )
        after = await stack.route(task(ROME))
        assert after.backend == "claude" and after.chain[1:] and "gpt" in after.chain
        (why,) = [r.evidence for r in after.reasons if r.rule == "adapt"]
        assert why.startswith("knowledge: claude ranked above gpt — rated 0.95 over 4 answers")
        assert "vs 0.10 over 4" in why
        answered = await stack.dispatch(task(ROME))
        assert answered.backend == "claude"
        # a private task is never moved to a backend that is not private
        private = await stack.route(task(ROME, private=True))
        assert set(private.chain) <= {"local"}


def capped(cap: float) -> Callable[[BackendConfig], BackendConfig]:
    def tweak(b: BackendConfig) -> BackendConfig:
        return dataclasses.replace(b, budget=Budget(daily_usd=cap)) if b.key == "gpt" else b

    return tweak


def small(text: str, max_output_tokens: int = 16) -> Task:
    """A task whose answer is capped: its upper cost estimate is small."""
    t = task(text)
    request = dataclasses.replace(t.request, max_output_tokens=max_output_tokens)
    return dataclasses.replace(t, request=request)


def spent_on(stack: Stack, backend: str) -> float:
    with closing(sqlite3.connect(stack.tmp / "ledger.db")) as db:
        (spent,) = db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM attempts WHERE backend = ?", (backend,)
        ).fetchone()
    return float(spent)


async def test_a_backend_over_its_budget_is_skipped_and_its_cap_never_crossed(
    tmp_path: Path,
) -> None:
    cap = 0.0015
    async with running_stack(tmp_path, tweak=capped(cap)) as stack:
        served: list[str] = []
        for _ in range(20):
            served.append((await stack.dispatch(small(ROME))).backend)
            if served[-1] != "gpt":
                break
        assert served[0] == "gpt" and served[-1] == "claude", served
        for _ in range(10):  # whatever the router decides now, the cap holds
            await stack.dispatch(small(ROME))
            assert spent_on(stack, "gpt") <= cap
        spent = spent_on(stack, "gpt")
        assert 0 < spent <= cap
        # a task that could cost more than is left skips gpt, and says why with the numbers
        large = small(ROME, max_output_tokens=200)  # up to 200 output tokens: $0.0020 at gpt
        decision = await stack.route(large)
        (skip,) = [s for s in decision.skipped if s.backend == "gpt"]
        assert skip.reason == "over_budget"
        assert skip.detail.startswith("daily $0.0015, spent $0.00")
        assert skip.detail.endswith(", this task up to $0.0020")
        # a call pinned to gpt is held to the budget too: nothing is sent
        sent = len(stack.sim.requests("gpt"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.dispatch(large, backend="gpt")
        assert "daily $0.0015, spent" in (err.value.details() or "")
        assert len(stack.sim.requests("gpt")) == sent
        # the registry's health stream and ListBackends carry what the ledger says was spent
        await stack.wait_router(
            lambda v: abs(v.health["gpt"].budget.spent_today_usd - spent) < 1e-9
        )
        listed = await stack.registry_stub.ListBackends(registry_pb2.ListBackendsRequest())
        gpt = next(s for s in listed.backends if s.backend.key == "gpt")
        assert gpt.health.budget.budget.daily_usd == cap
        assert gpt.health.budget.spent_today_usd == pytest.approx(spent)
