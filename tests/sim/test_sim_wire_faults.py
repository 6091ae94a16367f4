"""httpx-level checks that every fault kind produces its documented wire behaviour."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from uniwizard_sim.app import RunningSimulator
from uniwizard_sim.textgen import REFUSAL_TEXT, answer_text

OPENAI_HEADERS = {"Authorization": "Bearer sk-test"}
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "k"}
MSGS = [{"role": "user", "content": "hello there"}]


def oa_body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": MSGS, **extra}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def an_body(stream: bool = False) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 500, "messages": MSGS, "stream": stream}


GM_BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


async def post_oa(
    c: httpx.AsyncClient, sim: RunningSimulator, body: dict[str, Any], target: str = "gpt"
) -> httpx.Response:
    url = sim.base_url(target, "openai") + "/chat/completions"
    return await c.post(url, json=body, headers=OPENAI_HEADERS)


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


async def read_stream(
    c: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[list[str], Exception | None]:
    """Collect ``data:`` payloads until the stream ends or fails."""
    got: list[str] = []
    try:
        async with c.stream("POST", url, json=body, headers=headers) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    got.append(line[len("data: ") :])
    except (httpx.TransportError, httpx.TimeoutException) as exc:
        return got, exc
    return got, None


async def test_reset_is_a_transport_error(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "reset"}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await post_oa(c, sim, oa_body())
        ok = await post_oa(c, sim, oa_body())
    assert ok.status_code == 200
    rec = sim.requests("gpt")
    assert rec[0]["fault"] == "reset" and rec[0]["status"] == 0
    assert rec[1]["fault"] is None and rec[1]["status"] == 200


async def test_hang_gives_read_timeout(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "hang"}, times=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.4)) as c:
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await post_oa(c, sim, oa_body())
        assert time.monotonic() - t0 < 3
        assert (await post_oa(c, sim, oa_body())).status_code == 200


async def test_delay(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "delay", "seconds": 0.4}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        t0 = time.monotonic()
        resp = await post_oa(c, sim, oa_body())
        assert time.monotonic() - t0 >= 0.35
    assert resp.json()["choices"][0]["finish_reason"] == "stop"


async def test_status_fault_bodies_and_retry_after(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "status", "status": 429, "retry_after": 7}, times=1)
    sim.add_fault("claude", {"kind": "status", "status": 529, "message": "busy"}, times=1)
    sim.add_fault("gemini", {"kind": "status", "status": 429, "retry_after": 2}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        r1 = await post_oa(c, sim, oa_body())
        r2 = await c.post(
            sim.base_url("claude", "anthropic") + "/messages",
            json=an_body(),
            headers=ANTHROPIC_HEADERS,
        )
        r3 = await c.post(
            sim.base_url("gemini", "gemini") + "/models/gemini-2.5-flash:generateContent",
            json=GM_BODY,
            headers=GEMINI_HEADERS,
        )
    assert r1.status_code == 429 and r1.headers["retry-after"] == "7"
    assert r1.json()["error"]["code"] == "rate_limit_exceeded"
    assert r1.json()["error"]["type"] == "requests"
    assert r2.status_code == 529
    assert r2.json() == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert r3.status_code == 429
    err = r3.json()["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED" and err["code"] == 429
    assert err["details"][0]["retryDelay"] == "2s"


async def test_content_filter_per_provider(sim: RunningSimulator) -> None:
    for target in ("gpt", "claude", "gemini"):
        sim.add_fault(target, {"kind": "content_filter"}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        r1 = await post_oa(c, sim, oa_body())
        r2 = await c.post(
            sim.base_url("claude", "anthropic") + "/messages",
            json=an_body(),
            headers=ANTHROPIC_HEADERS,
        )
        r3 = await c.post(
            sim.base_url("gemini", "gemini") + "/models/g:generateContent",
            json=GM_BODY,
            headers=GEMINI_HEADERS,
        )
    assert r1.status_code == 400 and r1.json()["error"]["code"] == "content_policy_violation"
    assert r2.status_code == 400
    assert r2.json()["error"]["message"] == "Output blocked by content filtering policy"
    assert r3.status_code == 200
    assert r3.json()["promptFeedback"]["blockReason"] == "SAFETY"
    assert "candidates" not in r3.json()


async def test_slow_first_token_streaming(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "slow_first_token", "seconds": 0.5}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        t0 = time.monotonic()
        async with c.stream(
            "POST",
            sim.base_url("gpt", "openai") + "/chat/completions",
            json=oa_body(stream=True),
            headers=OPENAI_HEADERS,
        ) as resp:
            t_headers = time.monotonic() - t0
            lines = [line async for line in resp.aiter_lines() if line]
            t_body = time.monotonic() - t0
    assert t_headers < 0.4
    assert t_body >= 0.45
    assert lines[-1] == "data: [DONE]"


async def test_stall_streaming_then_read_timeout(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "stall", "after_chunks": 2, "seconds": 30}, times=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.5)) as c:
        got, exc = await read_stream(
            c, sim.base_url("gpt", "openai") + "/chat/completions", oa_body(True), OPENAI_HEADERS
        )
    assert isinstance(exc, httpx.ReadTimeout)
    contents = [json.loads(d)["choices"][0]["delta"].get("content") for d in got]
    assert contents[0] == ""  # role chunk
    assert len([x for x in contents if x]) == 2


async def test_cut_stream_is_incomplete(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "cut", "after_chunks": 2}, times=1)
    sim.add_fault("claude", {"kind": "cut", "after_chunks": 1}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        got, exc = await read_stream(
            c, sim.base_url("gpt", "openai") + "/chat/completions", oa_body(True), OPENAI_HEADERS
        )
        assert isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)
        assert "[DONE]" not in got
        assert len(got) == 3  # role chunk + 2 content chunks
        got, exc = await read_stream(
            c, sim.base_url("claude", "anthropic") + "/messages", an_body(True), ANTHROPIC_HEADERS
        )
        assert exc is not None
        types = [json.loads(d)["type"] for d in got]
        assert types == ["message_start", "content_block_start", "ping", "content_block_delta"]


async def test_cut_non_streaming_partial_body(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "cut"}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await post_oa(c, sim, oa_body())


async def test_malformed_chunk_and_body(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "malformed_chunk", "after_chunks": 1}, times=1)
    sim.add_fault("gpt", {"kind": "malformed_chunk"}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        got, exc = await read_stream(
            c, sim.base_url("gpt", "openai") + "/chat/completions", oa_body(True), OPENAI_HEADERS
        )
        assert exc is None
        bad = []
        for d in got:
            if d == "[DONE]":
                continue
            try:
                json.loads(d)
            except ValueError:
                bad.append(d)
        assert len(bad) == 1
        assert got.index(bad[0]) == 2  # after role chunk + 1 content chunk
        resp = await post_oa(c, sim, oa_body())
        assert resp.status_code == 200
        with pytest.raises(ValueError):
            json.loads(resp.content)


async def test_no_done(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "no_done"}, times=1)
    sim.add_fault("claude", {"kind": "no_done"}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        got, exc = await read_stream(
            c, sim.base_url("gpt", "openai") + "/chat/completions", oa_body(True), OPENAI_HEADERS
        )
        assert exc is None
        assert "[DONE]" not in got
        assert json.loads(got[-1])["usage"]["total_tokens"] > 0
        got, exc = await read_stream(
            c, sim.base_url("claude", "anthropic") + "/messages", an_body(True), ANTHROPIC_HEADERS
        )
        assert exc is None
        assert [json.loads(d)["type"] for d in got][-1] == "message_delta"


async def test_stream_status_after_chunks_in_band_error(sim: RunningSimulator) -> None:
    sim.add_fault("claude", {"kind": "status", "status": 529, "after_chunks": 2}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        async with c.stream(
            "POST",
            sim.base_url("claude", "anthropic") + "/messages",
            json=an_body(True),
            headers=ANTHROPIC_HEADERS,
        ) as resp:
            text = (await resp.aread()).decode()
    assert resp.status_code == 200
    assert "event: error" in text
    last = json.loads(sse_data(text)[-1])
    assert last["error"]["type"] == "overloaded_error"
    assert "message_stop" not in text


async def test_content_faults_openai(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "empty"}, times=1)
    sim.add_fault("gpt", {"kind": "refusal_text"}, times=1)
    sim.add_fault("gpt", {"kind": "truncated"}, times=1)
    sim.add_fault("gpt", {"kind": "text", "text": "exactly this"}, times=1)
    sim.add_fault("gpt", {"kind": "refusal_signal", "finish_reason": "content_filter"}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        res = [(await post_oa(c, sim, oa_body())).json() for _ in range(5)]
    empty, refusal, trunc, text, cf = (r["choices"][0] for r in res)
    assert empty["message"]["content"] == "" and res[0]["usage"]["completion_tokens"] == 0
    assert res[0]["usage"]["prompt_tokens"] == 2
    assert refusal["message"]["content"] == REFUSAL_TEXT
    assert trunc["finish_reason"] == "length"
    assert answer_text("gpt-4o", "hello there", 0).startswith(trunc["message"]["content"])
    assert text["message"]["content"] == "exactly this"
    assert cf["finish_reason"] == "content_filter" and cf["message"]["content"] is None


async def test_content_faults_anthropic_and_gemini(sim: RunningSimulator) -> None:
    sim.add_fault("claude", {"kind": "empty"}, times=1)
    sim.add_fault("claude", {"kind": "truncated"}, times=1)
    sim.add_fault("gemini", {"kind": "empty"}, times=1)
    sim.add_fault("gemini", {"kind": "truncated"}, times=1)
    sim.add_fault("gemini", {"kind": "refusal_signal"}, times=1)
    an_url = sim.base_url("claude", "anthropic") + "/messages"
    gm_url = sim.base_url("gemini", "gemini") + "/models/g:generateContent"
    async with httpx.AsyncClient(timeout=5) as c:
        a1 = (await c.post(an_url, json=an_body(), headers=ANTHROPIC_HEADERS)).json()
        a2 = (await c.post(an_url, json=an_body(), headers=ANTHROPIC_HEADERS)).json()
        g1 = (await c.post(gm_url, json=GM_BODY, headers=GEMINI_HEADERS)).json()
        g2 = (await c.post(gm_url, json=GM_BODY, headers=GEMINI_HEADERS)).json()
        g3 = (await c.post(gm_url, json=GM_BODY, headers=GEMINI_HEADERS)).json()
    assert a1["content"] == [] and a1["stop_reason"] == "end_turn"
    assert a1["usage"]["output_tokens"] == 0 and a1["usage"]["input_tokens"] == 2
    assert a2["stop_reason"] == "max_tokens"
    assert g1["candidates"][0]["content"]["parts"] == []
    assert g1["usageMetadata"]["promptTokenCount"] == 2
    assert g2["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert g3["candidates"][0]["finishReason"] == "SAFETY"
    assert "content" not in g3["candidates"][0]
    assert any(r.get("blocked") for r in g3["candidates"][0]["safetyRatings"])


async def test_refusal_signal_openai_stream(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "refusal_signal"}, times=1)
    async with httpx.AsyncClient(timeout=5) as c:
        got, exc = await read_stream(
            c, sim.base_url("gpt", "openai") + "/chat/completions", oa_body(True), OPENAI_HEADERS
        )
    assert exc is None
    chunks = [json.loads(d) for d in got if d != "[DONE]"]
    refusal = "".join(
        ch["choices"][0]["delta"].get("refusal") or "" for ch in chunks if ch["choices"]
    )
    assert refusal == REFUSAL_TEXT


async def test_gemini_stream_faults(sim: RunningSimulator) -> None:
    sim.add_fault("gemini", {"kind": "cut", "after_chunks": 1}, times=1)
    url = sim.base_url("gemini", "gemini") + "/models/g:streamGenerateContent?alt=sse"
    async with httpx.AsyncClient(timeout=5) as c:
        got, exc = await read_stream(c, url, GM_BODY, GEMINI_HEADERS)
        assert exc is not None and len(got) == 1
        got, exc = await read_stream(c, url, GM_BODY, GEMINI_HEADERS)
    assert exc is None
    final = json.loads(got[-1])
    assert final["candidates"][0]["finishReason"] == "STOP"
    assert final["usageMetadata"]["candidatesTokenCount"] > 0


async def test_times_and_target_isolation(sim: RunningSimulator) -> None:
    sim.add_fault("gpt", {"kind": "status", "status": 500}, times=2)
    async with httpx.AsyncClient(timeout=5) as c:
        other = await post_oa(c, sim, oa_body(), target="grok")
        codes = [(await post_oa(c, sim, oa_body())).status_code for _ in range(3)]
    assert other.status_code == 200
    assert codes == [500, 500, 200]


async def test_paths_scope_models(sim: RunningSimulator) -> None:
    models_url = sim.base_url("gpt", "openai") + "/models"
    sim.add_fault("gpt", {"kind": "status", "status": 503})  # completion only (default)
    async with httpx.AsyncClient(timeout=5) as c:
        assert (await c.get(models_url, headers=OPENAI_HEADERS)).status_code == 200
        assert (await post_oa(c, sim, oa_body())).status_code == 503
        sim.clear_faults()
        sim.add_fault("gpt", {"kind": "status", "status": 500}, times=1, paths="models")
        assert (await post_oa(c, sim, oa_body())).status_code == 200
        assert (await c.get(models_url, headers=OPENAI_HEADERS)).status_code == 500
        assert (await c.get(models_url, headers=OPENAI_HEADERS)).status_code == 200
        sim.add_fault("gpt", {"kind": "reset"}, times=1, paths="all")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await c.get(models_url, headers=OPENAI_HEADERS)
        sim.add_fault("gpt", {"kind": "hang"}, times=1, paths="models")
        with pytest.raises(httpx.ReadTimeout):
            await c.get(models_url, headers=OPENAI_HEADERS, timeout=httpx.Timeout(5, read=0.3))


async def test_slow_stream_gap(sim: RunningSimulator) -> None:
    sim.add_fault("gemini", {"kind": "slow_stream", "seconds": 0.05}, times=1)
    url = sim.base_url("gemini", "gemini") + "/models/g:streamGenerateContent?alt=sse"
    async with httpx.AsyncClient(timeout=5) as c:
        t0 = time.monotonic()
        got, exc = await read_stream(c, url, GM_BODY, GEMINI_HEADERS)
    assert exc is None
    assert time.monotonic() - t0 >= 0.05 * (len(got) - 1) * 0.9


async def test_gemini_stream_without_alt_sse_is_json_array(sim: RunningSimulator) -> None:
    url = sim.base_url("gemini", "gemini") + "/models/g:streamGenerateContent"
    async with httpx.AsyncClient(timeout=5) as c:
        resp = await c.post(url, json=GM_BODY, headers=GEMINI_HEADERS)
    items = resp.json()
    assert isinstance(items, list) and len(items) > 2
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"
    text = "".join(p["text"] for it in items for p in it["candidates"][0]["content"]["parts"])
    assert text == answer_text("g", "hello there", 0)
