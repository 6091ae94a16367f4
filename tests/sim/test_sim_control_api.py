"""The /_sim control API, the request record, auth over HTTP and the CLI entry point."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from uniwizard_sim.app import RunningSimulator

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def test_fault_endpoints(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5) as c:
        assert (await c.get("/_sim/health")).json() == {"ok": True}
        r = await c.post(
            "/_sim/faults",
            json={"target": "gpt", "fault": {"kind": "status", "status": 503}, "times": 1},
        )
        assert r.status_code == 200 and r.json()["id"]
        bad = await c.post("/_sim/faults", json={"target": "gpt", "fault": {"kind": "boom"}})
        assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]
        bad = await c.post("/_sim/faults", content=b"{nope")
        assert bad.status_code == 400
        listed = (await c.get("/_sim/faults")).json()["faults"]
        assert [f["fault"]["kind"] for f in listed] == ["status"]
        url = sim.base_url("gpt", "openai") + "/chat/completions"
        hdr = {"Authorization": "Bearer k"}
        assert (await c.post(url, json=CHAT, headers=hdr)).status_code == 503
        assert (await c.post(url, json=CHAT, headers=hdr)).status_code == 200
        await c.post("/_sim/faults", json={"target": "gpt", "fault": {"kind": "empty"}})
        await c.post("/_sim/faults", json={"target": "x", "fault": {"kind": "empty"}})
        assert (await c.request("DELETE", "/_sim/faults", params={"target": "gpt"})).json() == {
            "removed": 1
        }
        assert (await c.delete("/_sim/faults")).json() == {"removed": 1}


async def test_request_record_and_redaction(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5) as c:
        await c.post(
            "/gpt/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer secret"}
        )
        await c.post(
            "/gem/v1beta/models/g:generateContent?key=secret2",
            json={"contents": [{"parts": [{"text": "x"}]}]},
        )
        await c.post("/claude/v1/messages", json={}, headers={"x-api-key": "secret3"})
        await c.get("/gpt/v2/unknown")
        recs = (await c.get("/_sim/requests")).json()["requests"]
        assert [r["seq"] for r in recs] == [1, 2, 3, 4]
        gpt = recs[0]
        assert gpt["target"] == "gpt" and gpt["provider"] == "openai"
        assert gpt["method"] == "POST" and gpt["path"] == "/gpt/v1/chat/completions"
        assert gpt["headers"]["authorization"] == "***"
        assert gpt["body"] == CHAT and gpt["status"] == 200 and gpt["fault"] is None
        assert isinstance(gpt["time"], float)
        assert recs[1]["query"] == {"key": "***"} and recs[1]["status"] == 200
        assert recs[2]["headers"]["x-api-key"] == "***"
        assert recs[2]["status"] == 400  # missing anthropic-version
        assert recs[3]["status"] == 404 and recs[3]["provider"] is None
        assert "secret" not in str(recs)
        only = (await c.get("/_sim/requests", params={"target": "gem"})).json()["requests"]
        assert [r["target"] for r in only] == ["gem"]
        await c.delete("/_sim/requests")
        assert (await c.get("/_sim/requests")).json() == {"requests": []}


async def test_auth_over_http(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5) as c:
        r = await c.post("/gpt/v1/chat/completions", json=CHAT)
        assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
        r = await c.post("/local/v1/chat/completions", json=CHAT)
        assert r.status_code == 200
        r = await c.post(
            "/claude/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            headers={"anthropic-version": "2023-06-01"},
        )
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        r = await c.get("/gemini/v1beta/models")
        assert r.status_code == 403
        r = await c.get("/gemini/v1beta/models", headers={"x-goog-api-key": "k"})
        assert r.status_code == 200 and r.json()["models"][0]["name"].startswith("models/")
        r = await c.post(
            "/gpt/v1/chat/completions", content=b"{", headers={"Authorization": "Bearer k"}
        )
        assert r.status_code == 400 and "could not parse the JSON" in r.json()["error"]["message"]


async def test_model_overrides_and_reset(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5) as c:
        r = await c.put("/_sim/models", json={"target": "kimi", "models": ["kimi-k2"]})
        assert r.json() == {"ok": True}
        hdr = {"Authorization": "Bearer k"}
        data = (await c.get("/kimi/v1/models", headers=hdr)).json()
        assert data["object"] == "list"
        assert [m["id"] for m in data["data"]] == ["kimi-k2"]
        assert data["data"][0]["object"] == "model"
        ant = (
            await c.get("/kimi/v1/models", headers={"x-api-key": "k", "anthropic-version": "v"})
        ).json()
        assert ant["has_more"] is False and ant["first_id"] == "kimi-k2"
        assert ant["data"][0]["type"] == "model"
        assert (
            await c.put("/_sim/models", json={"target": "kimi", "models": 3})
        ).status_code == 400
        await c.post("/_sim/faults", json={"target": "kimi", "fault": {"kind": "empty"}})
        assert (await c.post("/_sim/reset")).json() == {"ok": True}
        assert (await c.get("/_sim/faults")).json() == {"faults": []}
        assert (await c.get("/_sim/requests")).json() == {"requests": []}
        data = (await c.get("/kimi/v1/models", headers=hdr)).json()
        assert "gpt-4o" in [m["id"] for m in data["data"]]


async def test_module_entry_point_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uniwizard_sim",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("uniwizard-sim listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        async with httpx.AsyncClient(timeout=5) as c:
            assert (await c.get(url + "/_sim/health")).json() == {"ok": True}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_stop_releases_hanging_requests() -> None:
    from uniwizard_sim.app import running_simulator

    async with httpx.AsyncClient(timeout=10) as c:
        async with running_simulator() as sim:
            sim.add_fault("gpt", {"kind": "hang"})
            sim.add_fault("gem", {"kind": "stall", "after_chunks": 1})
            hang = asyncio.create_task(
                c.post(
                    sim.base_url("gpt", "openai") + "/chat/completions",
                    json=CHAT,
                    headers={"Authorization": "Bearer k"},
                )
            )
            await asyncio.sleep(0.2)
            t0 = asyncio.get_running_loop().time()
        assert asyncio.get_running_loop().time() - t0 < 3
        try:
            await asyncio.wait_for(hang, 5)
        except httpx.TransportError:
            pass
        else:
            raise AssertionError("a hanging request must not get an answer")
