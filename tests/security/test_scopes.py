"""Named tokens with scopes on the real services over real sockets: every RPC refuses a token that
lacks its scope and nothing happens; the caller's name reaches the ledger and the spans; usage by
caller adds up; a token's budget is enforced. The HTTP edge is held to the same: its routes
refuse a token without ``think``, and what it answers is recorded and budgeted under the HTTP
caller's token's name."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from openai import AsyncOpenAI, RateLimitError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router_svc.links import GrpcCallerLink
from tests.stack import ROOT, Stack, running_stack, task
from uniwizard import cli
from uniwizard.config import dump_config, load_config
from uniwizard.convert import request_to_pb, task_to_pb
from uniwizard.scopes import METHOD_SCOPES
from uniwizard.tokens import hash_token
from uniwizard.types import Outcome
from uniwizard.v1 import (
    caller_pb2,
    caller_pb2_grpc,
    common_pb2,
    registry_pb2,
    registry_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

SERVICE = "service-token-0123456789abcdef"  # UNIWIZARD_TOKEN: 'default', every scope
TOKENS = {  # name: (token, scopes, extra YAML)
    "rooter": ("rooter-token-0123456789abcdef", "route", ""),
    "alice": ("alice-token-0123456789abcdef", "think, route", ""),
    "bob": ("bob-token-0123456789abcdefgh", "think", ""),
    "ops": ("ops-token-0123456789abcdefgh", "admin", ""),
    "frugal": ("frugal-token-0123456789abcd", "think", "    budget: {daily_usd: 0.0001}\n"),
}
ROME = "Who was the first emperor of Rome?"
HASHED = hash_token("x" * 20)


def write_tokens(path: Path) -> None:
    text = "tokens:\n"
    for name, (token, scopes, extra) in TOKENS.items():
        text += f'  "{hash_token(token)}":\n    name: {name}\n    scopes: [{scopes}]\n{extra}'
    path.write_text(text)


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    token = SERVICE if name == "default" else TOKENS[name][0]
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    """The stack with UNIWIZARD_TOKEN (the services' own, 'default') and the tokens file; run
    both ways (in-process links and network links), as tests/conftest.py does for a Stack."""
    write_tokens(tmp_path / "tokens.yaml")
    monkeypatch.setenv("UNIWIZARD_TOKEN", SERVICE)
    monkeypatch.setenv("UNIWIZARD_TOKENS_FILE", str(tmp_path / "tokens.yaml"))
    async with running_stack(tmp_path) as running:
        yield running


def ledger(tmp: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp / "ledger.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY id")]
    finally:
        db.close()


Call = Callable[[grpc.aio.Channel, Any], Awaitable[Any]]


def rpc_cases(stack: Stack) -> dict[str, tuple[str, str, Call]]:
    """Every RPC that needs a scope: (the service, a token lacking the scope, the call)."""
    t = task_to_pb(task(ROME))
    blind = request_to_pb(task(ROME).request)

    def router(ch: grpc.aio.Channel) -> router_pb2_grpc.RouterStub:
        return router_pb2_grpc.RouterStub(ch)

    def registry(ch: grpc.aio.Channel) -> registry_pb2_grpc.RegistryStub:
        return registry_pb2_grpc.RegistryStub(ch)

    def caller(ch: grpc.aio.Channel) -> caller_pb2_grpc.CallerStub:
        return caller_pb2_grpc.CallerStub(ch)

    async def stream(call: Any) -> list[Any]:
        return [event async for event in call]

    failures = registry_pb2.ReportOutcomesRequest(
        reports=[
            registry_pb2.ReportOutcomeRequest(
                backend="gpt", outcome=common_pb2.OUTCOME_CLASS_SERVER_ERROR, detail="x"
            )
            for _ in range(10)
        ]
    )
    rate = common_pb2.RateRequest(request_id="r1", score=0.5)
    call = caller_pb2.CallRequest(backend="gpt", request=blind)
    return {
        "/uniwizard.v1.Router/Route": (
            "router",
            "bob",
            lambda ch, md: router(ch).Route(router_pb2.RouteRequest(task=t), metadata=md),
        ),
        "/uniwizard.v1.Router/Dispatch": (
            "router",
            "rooter",
            lambda ch, md: router(ch).Dispatch(router_pb2.DispatchRequest(task=t), metadata=md),
        ),
        "/uniwizard.v1.Router/DispatchStream": (
            "router",
            "rooter",
            lambda ch, md: stream(
                router(ch).DispatchStream(router_pb2.DispatchRequest(task=t), metadata=md)
            ),
        ),
        "/uniwizard.v1.Router/Rate": (
            "router",
            "rooter",
            lambda ch, md: router(ch).Rate(rate, metadata=md),
        ),
        "/uniwizard.v1.Registry/SetEnabled": (
            "registry",
            "alice",
            lambda ch, md: registry(ch).SetEnabled(
                registry_pb2.SetEnabledRequest(key="gpt", enabled=False, by="x"), metadata=md
            ),
        ),
        "/uniwizard.v1.Registry/Reload": (
            "registry",
            "bob",
            lambda ch, md: registry(ch).Reload(registry_pb2.ReloadRequest(), metadata=md),
        ),
        "/uniwizard.v1.Registry/ReportOutcomes": (
            "registry",
            "ops",
            lambda ch, md: registry(ch).ReportOutcomes(failures, metadata=md),
        ),
        "/uniwizard.v1.Registry/AcquireTrial": (
            "registry",
            "ops",
            lambda ch, md: registry(ch).AcquireTrial(
                registry_pb2.AcquireTrialRequest(key="gpt"), metadata=md
            ),
        ),
        "/uniwizard.v1.Caller/Call": (
            "caller",
            "ops",
            lambda ch, md: caller(ch).Call(call, metadata=md),
        ),
        "/uniwizard.v1.Caller/CallStream": (
            "caller",
            "alice",
            lambda ch, md: stream(caller(ch).CallStream(call, metadata=md)),
        ),
        "/uniwizard.v1.Caller/ClientSpend": (
            "caller",
            "alice",
            lambda ch, md: caller(ch).ClientSpend(
                caller_pb2.ClientSpendRequest(day_start=0, month_start=0), metadata=md
            ),
        ),
        "/uniwizard.v1.Caller/Rate": (
            "caller",
            "bob",
            lambda ch, md: caller(ch).Rate(rate, metadata=md),
        ),
    }


async def test_every_rpc_refuses_a_token_without_its_scope_and_nothing_happens(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # A reload would change gpt's model: refused, it must not happen.
    config = load_config(stack.config_path)
    gpt = dataclasses.replace(config.backends["gpt"], model="gpt-4o-mini")
    config = dataclasses.replace(config, backends={**config.backends, "gpt": gpt})
    Path(stack.config_path).write_text(dump_config(config))
    hosts = {"router": stack.router, "registry": stack.registry, "caller": stack.caller}
    cases = rpc_cases(stack)
    assert set(cases) == {m for m, scope in METHOD_SCOPES.items() if scope is not None}
    for method, (service, lacking, call) in cases.items():
        scope = METHOD_SCOPES[method]
        assert scope is not None
        async with grpc.aio.insecure_channel(hosts[service].target) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(ch, bearer(lacking))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
            assert f"token {lacking!r} lacks the {scope.value!r} scope" in (
                err.value.details() or ""
            ), (method, err.value.details())
            # A token nobody knows is UNAUTHENTICATED, as before.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(ch, (("authorization", "Bearer nobody-0123456789abcdefgh"),))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
    # Nothing happened: no provider saw a request, no ledger row, gpt still enabled and
    # healthy (ten reported failures would have opened its breaker), its model unchanged.
    await asyncio.sleep(0.2)
    assert stack.sim.requests() == []
    assert ledger(tmp_path) == []
    listed = await stack.registry_stub.ListBackends(registry_pb2.ListBackendsRequest())
    status = {b.backend.key: b for b in listed.backends}
    assert status["gpt"].health.state == common_pb2.HEALTH_STATE_HEALTHY or (
        status["gpt"].health.state == common_pb2.HEALTH_STATE_UNKNOWN
    )
    assert status["gpt"].health.failures_in_window == 0
    assert status["gpt"].backend.model == "gpt-4o"
    # The refusals were logged with names and scopes, never a token or its hash.
    assert "lacks the 'admin' scope needed for Registry.SetEnabled" in caplog.text
    for token in (SERVICE, *(t for t, _, _ in TOKENS.values())):
        assert token not in caplog.text
        assert hashlib.sha256(token.encode()).hexdigest()[:16] not in caplog.text

    # The same RPCs with a token that holds the scope work.
    async with grpc.aio.insecure_channel(stack.registry.target) as ch:
        reg = registry_pb2_grpc.RegistryStub(ch)
        reloaded = await reg.Reload(registry_pb2.ReloadRequest(), metadata=bearer("ops"))
        assert reloaded.ok and list(reloaded.changed) == ["gpt"]
        disabled = await reg.SetEnabled(
            registry_pb2.SetEnabledRequest(key="grok", enabled=False, by="ops"),
            metadata=bearer("ops"),
        )
        assert disabled.health.state == common_pb2.HEALTH_STATE_DISABLED
        # Read-only RPCs need any valid token, no scope.
        for md in (bearer("rooter"), bearer("ops")):
            assert (
                await reg.ListBackends(registry_pb2.ListBackendsRequest(), metadata=md)
            ).backends
            await reg.GetBackend(registry_pb2.GetBackendRequest(key="gpt"), metadata=md)
            await reg.Stats(registry_pb2.StatsRequest(), metadata=md)
    async with grpc.aio.insecure_channel(stack.router.target) as ch:
        decision = await router_pb2_grpc.RouterStub(ch).Route(
            router_pb2.RouteRequest(task=task_to_pb(task(ROME))), metadata=bearer("rooter")
        )
        assert decision.backend == "gpt"
    async with grpc.aio.insecure_channel(stack.caller.target) as ch:
        await caller_pb2_grpc.CallerStub(ch).Usage(
            caller_pb2.UsageRequest(), metadata=bearer("rooter")
        )


async def test_a_router_whose_token_the_caller_refuses_stops_at_once_naming_it(
    stack: Stack, tmp_path: Path
) -> None:
    request = caller_pb2.CallRequest(backend="gpt", request=request_to_pb(task(ROME).request))
    for md in ((), bearer("ops")):
        ch = grpc.aio.insecure_channel(
            stack.caller.target,
            interceptors=[_Metadata(md)] if md else None,
        )
        async with ch:
            result = await GrpcCallerLink(ch).call(request, timeout=5, trace_id="")
        assert result.outcome is Outcome.NO_BACKEND  # the router stops: no other backend
        assert "UNAUTHENTICATED" in result.error_message or (
            "lacks the 'service' scope" in result.error_message
        )
    assert stack.sim.requests() == []


class _Metadata(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, md: tuple[tuple[str, str], ...]) -> None:
        self.md = md

    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        details = grpc.aio.ClientCallDetails(
            details.method, details.timeout, self.md, details.credentials, details.wait_for_ready
        )
        return await continuation(details, request)


async def dispatch(
    stack: Stack, name: str, text: str = ROME, *, stream: bool = False, claim: str = ""
) -> str:
    """A task dispatched with ``name``'s token; its request id."""
    md = bearer(name) + ((("x-uniwizard-client", claim),) if claim else ())
    request = router_pb2.DispatchRequest(task=task_to_pb(task(text)))
    async with grpc.aio.insecure_channel(stack.router.target) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        if not stream:
            result = await stub.Dispatch(request, metadata=md, timeout=20)
            return str(result.request_id)
        events = [e async for e in stub.DispatchStream(request, metadata=md, timeout=20)]
        return str(events[-1].done.request_id)


async def test_usage_by_caller_adds_up_and_the_name_reaches_ledger_and_spans_never_the_token(
    spans: InMemorySpanExporter,  # first: the services see the exporter when they start
    stack: Stack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = [await dispatch(stack, "alice"), await dispatch(stack, "alice", stream=True)]
    bob = [
        await dispatch(stack, "bob", "Analyze the trade-offs between event sourcing and CRUD"),
        await dispatch(stack, "bob", stream=True),
        # A client's claim to be someone else is not believed: it is bob's.
        await dispatch(stack, "bob", claim="alice"),
    ]
    # The services' own calls to each other pass with their token: the caller's outcome
    # reports reach the registry.
    for _ in range(50):
        if stack.registry.registry.health("gpt").last_outcome == "success":
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the caller's outcome reports never reached the registry")
    by_request = {r["request_id"]: r["client"] for r in ledger(tmp_path)}
    assert {by_request[r] for r in alice} == {"alice"}
    assert {by_request[r] for r in bob} == {"bob"}

    # Ratings: only the client that asked may rate an answer.
    async with grpc.aio.insecure_channel(stack.router.target) as ch:
        router = router_pb2_grpc.RouterStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.Rate(
                common_pb2.RateRequest(request_id=bob[0], score=0.1), metadata=bearer("alice")
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no answered request of 'alice'" in (err.value.details() or "")
        rated = await router.Rate(
            common_pb2.RateRequest(request_id=alice[0], score=0.9), metadata=bearer("alice")
        )
        assert rated.backend == "gpt"

    # Usage by caller (the operator's token sees everyone): the callers add up to the total.
    async with grpc.aio.insecure_channel(stack.caller.target) as ch:
        caller = caller_pb2_grpc.CallerStub(ch)
        usage = await caller.Usage(
            caller_pb2.UsageRequest(by_client=True), metadata=bearer("default")
        )
        mine = await caller.Usage(caller_pb2.UsageRequest(by_client=True), metadata=bearer("bob"))
    clients = {u.client: u for u in usage.clients}
    assert set(clients) == {"alice", "bob"}
    assert clients["alice"].attempts == 2 and clients["bob"].attempts == 3
    assert sum(u.attempts for u in usage.clients) == usage.total.attempts == 5
    assert sum(u.cost_usd for u in usage.clients) == pytest.approx(usage.total.cost_usd)
    assert usage.total.cost_usd > 0 and clients["alice"].cost_usd > 0
    # A token without admin sees its own attempts only.
    assert [u.client for u in mine.clients] == ["bob"]
    assert mine.total.attempts == 3
    assert mine.total.cost_usd == pytest.approx(clients["bob"].cost_usd)

    # The same through the command line.
    env = dict(os.environ, UNIWIZARD_CALLER_ADDR=stack.caller.target, UNIWIZARD_TOKEN=SERVICE)
    env.pop("UNIWIZARD_TOKENS_FILE")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uniwizard.cli", "usage", "--by", "caller", "--json",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, errout = await proc.communicate()
    assert proc.returncode == 0, errout
    report = json.loads(out)
    assert {r["caller"]: r["attempts"] for r in report["callers"]} == {"alice": 2, "bob": 3}
    total = sum(r["cost_usd"] for r in report["callers"])
    assert total == pytest.approx(report["total"]["cost_usd"])
    assert report["total"]["caller"] == "total"

    finished = spans.get_finished_spans()
    dispatch_spans = [s for s in finished if s.name == "dispatch"]
    chat_spans = [s for s in finished if s.name.startswith("chat ")]
    assert len(dispatch_spans) == 5 and len(chat_spans) == 5
    for group in (dispatch_spans, chat_spans):
        names = sorted(str((s.attributes or {}).get("uniwizard.client")) for s in group)
        assert names == ["alice", "alice", "bob", "bob", "bob"]
    texts = [r.getMessage() for r in caplog.records]
    for span in finished:
        texts.append(json.dumps({k: str(v) for k, v in (span.attributes or {}).items()}))
    for token in (SERVICE, *(t for t, _, _ in TOKENS.values())):
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert [t for t in texts if token in t or digest[:16] in t] == []


async def test_a_token_over_its_budget_is_refused_naming_it_and_nothing_is_sent(
    stack: Stack, tmp_path: Path
) -> None:
    await dispatch(stack, "frugal")  # under the cap when it starts: answered
    sent = len(stack.sim.requests())
    for stream in (False, True):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await dispatch(stack, "frugal", stream=stream)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "token 'frugal' has reached its daily budget ($0.0001; spent $0.0" in (
            err.value.details() or ""
        )
    assert len(stack.sim.requests()) == sent
    assert [r["client"] for r in ledger(tmp_path)] == ["frugal"]
    await dispatch(stack, "alice")  # another token is not held to it
    # The ledger's figure is what counts: a router that did not see the spending (a fresh
    # one, as after a restart) reads it through the caller's Usage by client.
    stack.router.core.clients.tracker = type(stack.router.core.clients.tracker)()
    stack.router.core.clients._next_read = 0.0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatch(stack, "frugal")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_token_made_by_token_new_works_at_once_and_stops_when_removed(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens.yaml"
    before = path.read_text()
    args = ["token", "new", "carol", "--scopes", "think,route", "--file", str(path), "--json"]
    assert cli.main(args) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["hash"] == hash_token(made["token"]) and made["hash"] in path.read_text()
    assert made["token"] not in path.read_text()
    md = (("authorization", f"Bearer {made['token']}"),)
    request = router_pb2.DispatchRequest(task=task_to_pb(task(ROME)))
    async with grpc.aio.insecure_channel(stack.router.target) as ch:
        router = router_pb2_grpc.RouterStub(ch)
        for _ in range(30):  # the services look at the file once a second
            try:
                await router.Dispatch(request, metadata=md, timeout=20)
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the new token was never accepted")
        assert ledger(tmp_path)[-1]["client"] == "carol"
        path.write_text(before)
        for _ in range(30):
            try:
                await router.Route(
                    router_pb2.RouteRequest(task=task_to_pb(task(ROME))), metadata=md
                )
                await asyncio.sleep(0.1)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                break
        else:
            pytest.fail("the removed token still works")


@pytest.mark.parametrize(
    ("tokens_text", "token", "message"),
    [
        (
            f'tokens:\n  "{HASHED}":\n    name: agent\n    scopes: [thinking]\n',
            SERVICE,
            "tokens.yaml:4: tokens[0].scopes: unknown scope 'thinking'",
        ),
        (
            f'tokens:\n  "{HASHED}":\n    name: agent\n    scopes: [think]\n',
            "",
            "UNIWIZARD_TOKENS_FILE needs UNIWIZARD_TOKEN",
        ),
    ],
)
def test_a_service_with_a_bad_tokens_file_exits_2_with_one_clear_line(
    tmp_path: Path, tokens_text: str, token: str, message: str
) -> None:
    (tmp_path / "tokens.yaml").write_text(tokens_text)
    env = {
        "PATH": "/usr/bin:/bin",
        "UNIWIZARD_DATA_DIR": str(tmp_path),
        "UNIWIZARD_TOKENS_FILE": str(tmp_path / "tokens.yaml"),
    }
    if token:
        env["UNIWIZARD_TOKEN"] = token
    proc = subprocess.run(
        [sys.executable, "-m", "registry_svc", "--address", "127.0.0.1:0", "--no-probes"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert hashlib.sha256(b"x" * 20).hexdigest()[:16] not in proc.stderr


# -- the HTTP edge: the same tokens, scopes, names and budgets ---------------------------------

CHAT = {"model": "auto", "messages": [{"role": "user", "content": ROME}]}


def edge_client(stack: Stack, name: str) -> AsyncOpenAI:
    token = SERVICE if name == "default" else TOKENS[name][0]
    return AsyncOpenAI(base_url=f"{stack.edge.url}/v1", api_key=token, max_retries=0, timeout=20)


async def test_every_http_route_refuses_a_token_without_think_and_nothing_happens(
    stack: Stack, tmp_path: Path
) -> None:
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/v1/chat/completions", CHAT),
        ("POST", "/v1/chat/completions", {**CHAT, "stream": True}),
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/auto", None),
    ]
    async with httpx.AsyncClient(base_url=stack.edge.url, timeout=20) as http:
        for method, path, body in routes:
            for name in ("rooter", "ops"):  # known tokens, without 'think'
                token = TOKENS[name][0]
                resp = await http.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {token}"}
                )
                assert resp.status_code == 403, (name, method, path, resp.text)
                error = resp.json()["error"]
                assert (error["type"], error["code"]) == ("permission_error", "forbidden")
                assert "'think'" in error["message"]
            for headers in ({}, {"Authorization": "Bearer nobody-0123456789abcdefgh"}):
                resp = await http.request(method, path, json=body, headers=headers)
                assert resp.status_code == 401, (method, path, resp.text)
                assert resp.json()["error"]["type"] == "authentication_error"
        # The same routes with 'think' work.
        ok = await http.get("/v1/models", headers={"Authorization": f"Bearer {TOKENS['bob'][0]}"})
        assert ok.status_code == 200 and "auto" in {m["id"] for m in ok.json()["data"]}
    assert stack.sim.requests() == []
    assert ledger(tmp_path) == []


async def test_edge_traffic_is_recorded_and_budgeted_under_the_token_s_name(
    stack: Stack, tmp_path: Path
) -> None:
    alice, bob = edge_client(stack, "alice"), edge_client(stack, "bob")
    messages: Any = CHAT["messages"]
    await alice.chat.completions.create(model="auto", messages=messages)
    chunks = await alice.chat.completions.create(model="knowledge", messages=messages, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    raw = await bob.chat.completions.with_raw_response.create(model="gpt", messages=messages)
    bobs = raw.headers["x-uniwizard-request-id"]
    rows = ledger(tmp_path)
    assert sorted(r["client"] for r in rows) == ["alice", "alice", "bob"]
    assert [r["client"] for r in rows if r["request_id"] == bobs] == ["bob"]

    # usage --by caller answers "which agent spent what" for edge traffic too.
    async with grpc.aio.insecure_channel(stack.caller.target) as ch:
        usage = await caller_pb2_grpc.CallerStub(ch).Usage(
            caller_pb2.UsageRequest(by_client=True), metadata=bearer("default")
        )
    clients = {u.client: u for u in usage.clients}
    assert {name: u.attempts for name, u in clients.items()} == {"alice": 2, "bob": 1}
    assert sum(u.cost_usd for u in usage.clients) == pytest.approx(usage.total.cost_usd)

    # A token's budget holds at the edge: 429 in OpenAI's quota shape, nothing sent.
    frugal = edge_client(stack, "frugal")
    await frugal.chat.completions.create(model="auto", messages=messages)  # under the cap
    sent = len(stack.sim.requests())
    for stream in (False, True):
        with pytest.raises(RateLimitError) as err:
            await frugal.chat.completions.create(model="auto", messages=messages, stream=stream)
        assert err.value.status_code == 429
        body: Any = err.value.body
        assert (body["type"], body["code"]) == ("insufficient_quota", "over_budget")
        assert "token 'frugal' has reached its daily budget ($0.0001" in body["message"]
        wait = int(err.value.response.headers["retry-after"])
        assert 0 < wait <= 86400  # until the next UTC day
    assert len(stack.sim.requests()) == sent
    assert sorted(r["client"] for r in ledger(tmp_path)).count("frugal") == 1
    await alice.chat.completions.create(model="auto", messages=messages)  # others go on
