"""Every error class through the edge, with the openai SDK as the client, on the real stack:
the status, OpenAI's error shape with our outcome class and the attempts, and a stream that
fails after text went out ends with an error event, never ``[DONE]``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import tests.stack
from edge_svc.config import EdgeConfig
from edge_svc.server import build_edge
from tests.e2e.test_blind_identity import _with_on_detect
from tests.e2e.test_fallback import quick_timeouts
from tests.edge.conftest import running_edge
from tests.stack import running_stack
from uniwizard.security import Security

ROME = "Who was the first emperor of Rome?"  # knowledge → gpt first
ASK = [{"role": "user", "content": ROME}]
TOKEN = "edge-test-token-0123456789"


def error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict), body
    assert {"message", "type", "param", "code"} <= set(body)
    return body


async def test_400_names_the_field_and_sends_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack, running_edge(stack) as edge:
        client = edge.client()
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="auto", messages=ASK, temperature=3)  # type: ignore[arg-type]
        body = error_body(err.value)
        assert (body["param"], body["code"], body["type"]) == (
            "temperature",
            "bad_request",
            "invalid_request_error",
        )
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="gpt-5", messages=ASK)  # type: ignore[arg-type]
        assert error_body(err.value)["param"] == "model"
        assert "not auto, a category" in error_body(err.value)["message"]
        async with httpx.AsyncClient() as http:
            resp = await http.post(f"{edge.base_url}/chat/completions", content=b"{not json")
            assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]["message"]
            resp = await http.get(f"{edge.base_url}/nowhere")
            assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
            resp = await http.get(f"{edge.base_url}/chat/completions")
            assert resp.status_code == 405
        assert stack.sim.requests() == []


async def test_401_without_the_token(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack, running_edge(stack, token=TOKEN) as edge:
        with pytest.raises(openai.AuthenticationError) as err:
            await edge.client(api_key="wrong-token").chat.completions.create(
                model="auto",
                messages=ASK,  # type: ignore[arg-type]
            )
        body = error_body(err.value)
        assert body["code"] == "unauthorized" and body["type"] == "authentication_error"
        assert "invalid bearer token" in body["message"] and TOKEN not in json.dumps(body)
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"{edge.base_url}/models")
            assert resp.status_code == 401 and "missing bearer token" in resp.text
            assert resp.headers["www-authenticate"].startswith("Bearer")
            assert (await http.get(f"{edge.service.url}/health")).status_code == 200  # open
        ok = await edge.client().chat.completions.create(model="auto", messages=ASK)  # type: ignore[arg-type]
        assert ok.choices[0].message.content
        assert len(stack.sim.requests()) == 1  # only the authorised request went anywhere


async def test_413_over_the_body_limit(tmp_path: Path) -> None:
    config = EdgeConfig(max_body_bytes=2000, deadline_s=30)
    async with running_stack(tmp_path) as stack, running_edge(stack, config=config) as edge:
        big = [{"role": "user", "content": "x" * 3000}]
        with pytest.raises(openai.APIStatusError) as err:
            await edge.client().chat.completions.create(model="auto", messages=big)  # type: ignore[arg-type]
        assert err.value.status_code == 413
        body = error_body(err.value)
        assert body["code"] == "too_large" and "limit is 2,000 bytes" in body["message"]
        async with httpx.AsyncClient() as http:  # chunked: no Content-Length to judge by

            async def chunks() -> Any:
                for _ in range(30):
                    yield b" " * 100

            resp = await http.post(f"{edge.base_url}/chat/completions", content=chunks())
            assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_large"
        assert stack.sim.requests() == []


async def test_422_when_the_identity_guard_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tests.stack, "sim_config", _with_on_detect("reject"))
    async with running_stack(tmp_path) as stack, running_edge(stack) as edge:
        leak = [{"role": "user", "content": "Tell Grand Timmy what the first emperor of Rome was."}]
        with pytest.raises(openai.UnprocessableEntityError) as err:
            await edge.client().chat.completions.create(model="auto", messages=leak)  # type: ignore[arg-type]
        body = error_body(err.value)
        assert body["code"] == "identity_leak" and body["attempts"][0]["outcome"] == "identity_leak"
        assert "Timmy" not in json.dumps(body)
        assert stack.sim.requests() == []


async def test_429_when_every_backend_is_rate_limited(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack, running_edge(stack) as edge:
        stack.sim.add_fault("*", {"kind": "status", "status": 429, "retry_after": 120})
        with pytest.raises(openai.RateLimitError) as err:
            await edge.client().chat.completions.create(model="auto", messages=ASK)  # type: ignore[arg-type]
        assert err.value.response.headers["retry-after"] == "120"
        body = error_body(err.value)
        assert body["code"] == "rate_limited" and body["type"] == "rate_limit_error"
        assert len(body["attempts"]) >= 2
        assert {a["outcome"] for a in body["attempts"]} == {"rate_limited"}


async def test_502_for_an_upstream_failure_with_every_attempt(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack, running_edge(stack) as edge:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 500})
        with pytest.raises(openai.InternalServerError) as err:
            await edge.client().chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]
        assert err.value.status_code == 502
        body = error_body(err.value)
        assert body["code"] == "server_error" and body["type"] == "api_error"
        assert [(a["backend"], a["outcome"]) for a in body["attempts"]] == [
            ("gpt", "server_error"),
            ("gpt", "server_error"),
        ]
        assert len(body["trace_id"]) == 32
        assert err.value.response.headers["x-uniwizard-request-id"] == body["request_id"]


async def test_503_when_the_router_cannot_be_reached(tmp_path: Path) -> None:
    service = await build_edge(
        "127.0.0.1:0", router="127.0.0.1:9", config=EdgeConfig(deadline_s=5), security=Security()
    )
    await service.start()
    try:
        client = openai.AsyncOpenAI(
            base_url=f"{service.url}/v1", api_key="x", max_retries=0, timeout=20
        )
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="auto", messages=ASK)  # type: ignore[arg-type]
        assert err.value.status_code == 503
        assert error_body(err.value)["code"] == "unavailable"
        with pytest.raises(openai.APIStatusError) as err:
            await client.models.list()
        assert err.value.status_code == 503
    finally:
        await service.stop(grace=1.0)


async def test_504_when_the_backend_times_out(tmp_path: Path) -> None:
    async with (
        running_stack(tmp_path, tweak=quick_timeouts) as stack,
        running_edge(stack) as edge,
    ):
        stack.sim.add_fault("gpt", {"kind": "hang", "seconds": 10})
        with pytest.raises(openai.APIStatusError) as err:
            await edge.client().chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]
        assert err.value.status_code == 504
        body = error_body(err.value)
        assert body["code"] == "timeout" and body["attempts"][0]["outcome"] == "timeout"


async def test_a_stream_failing_after_text_ends_with_an_error_event_not_done(
    tmp_path: Path,
) -> None:
    async with (
        running_stack(tmp_path, tweak=quick_timeouts) as stack,
        running_edge(stack) as edge,
    ):
        stack.sim.add_fault("gpt", {"kind": "cut", "after_chunks": 25})
        stream = await edge.client().chat.completions.create(
            model="auto",
            messages=ASK,
            stream=True,  # type: ignore[arg-type]
        )
        text = []
        with pytest.raises(openai.APIError) as err:
            async for chunk in stream:
                text.append(chunk.choices[0].delta.content or "")
        assert "".join(text), "part of the answer went out before the cut"
        body: Any = err.value.body
        assert body["code"] in ("truncated", "timeout")
        assert "part of the answer was sent" in body["message"]

        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream(
                "POST",
                f"{edge.base_url}/chat/completions",
                json={"model": "auto", "messages": ASK, "stream": True},
            ) as resp,
        ):
            raw = (await resp.aread()).decode()
        assert resp.status_code == 200
        events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e.strip()]
        assert "[DONE]" not in events
        last = json.loads(events[-1])
        assert set(last) == {"error"} and last["error"]["code"] in ("truncated", "timeout")
        assert [a["backend"] for a in last["error"]["attempts"]] == ["gpt"]

        # a failure before any text: an ordinary error response, not a stream
        stack.sim.clear_faults()
        stack.sim.add_fault("grok", {"kind": "status", "status": 400, "message": "no"})
        with pytest.raises(openai.BadRequestError) as bad:
            await edge.client().chat.completions.create(
                model="grok",
                messages=ASK,
                stream=True,  # type: ignore[arg-type]
            )
        assert error_body(bad.value)["code"] == "bad_request"


async def test_a_client_that_goes_away_mid_stream_cancels_the_call(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack, running_edge(stack) as edge:
        stack.sim.add_fault("gpt", {"kind": "slow_stream", "seconds": 0.25})
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream(
                "POST",
                f"{edge.base_url}/chat/completions",
                json={"model": "auto", "messages": ASK, "stream": True},
            ) as resp,
        ):
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    request_id = resp.headers["x-uniwizard-request-id"]
                    break  # the first chunk: leave, closing the connection

        async def outcome() -> str:
            while True:
                rows = [
                    r
                    for r in await stack.caller.core.ledger.rows()
                    if r["request_id"] == request_id
                ]
                if rows and rows[-1]["outcome"] != "in_flight":
                    return str(rows[-1]["outcome"])
                await asyncio.sleep(0.05)

        assert await asyncio.wait_for(outcome(), 10) == "cancelled"
