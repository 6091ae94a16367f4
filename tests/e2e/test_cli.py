"""The command line against `uniwizard up --sim` run as a user would: separate processes.

Every test here runs against both ways `up` runs the stack: one process (the default) and four
(`--split`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["one-process", "split"])
def up(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("up")
    env = dict(os.environ)
    env.update(
        {
            "UNIWIZARD_REGISTRY_ADDR": f"127.0.0.1:{free_port()}",
            "UNIWIZARD_ROUTER_ADDR": f"127.0.0.1:{free_port()}",
            "UNIWIZARD_CALLER_ADDR": f"127.0.0.1:{free_port()}",
            "UNIWIZARD_SIM_ADDR": f"127.0.0.1:{free_port()}",
            "UNIWIZARD_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "UNIWIZARD_DATA_DIR": str(tmp),
        }
    )
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uniwizard.cli", "up", "--sim"]
        + (["--split"] if request.param == "split" else []),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    started = time.monotonic()
    for line in proc.stdout:
        lines.append(line)
        if "all services serving" in line:
            break
        assert time.monotonic() - started < 30, "".join(lines)
    else:
        pytest.fail("uniwizard up ended early:\n" + "".join(lines))
    env["UP_LOG"] = "".join(lines)
    env["UP_MODE"] = request.param
    yield env
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "uniwizard: stopped" in rest
    assert "Traceback" not in rest


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uniwizard.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def test_up_reports_all_services_and_the_simulator(up: dict[str, str]) -> None:
    log = up["UP_LOG"]
    assert f"simulator serving on http://{up['UNIWIZARD_SIM_ADDR']}" in log
    for name in ("registry", "router", "caller", "http"):
        assert up[f"UNIWIZARD_{name.upper()}_ADDR"] in log
    how = "in four processes" if up["UP_MODE"] == "split" else "in one process"
    assert "all services serving after" in log and how in log


def test_up_serves_the_openai_protocol_on_the_http_edge(up: dict[str, str]) -> None:
    from openai import OpenAI

    client = OpenAI(
        base_url=f"http://{up['UNIWIZARD_HTTP_ADDR']}/v1", api_key="unused", max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Who was the first emperor of Rome?"}]
    )
    assert raw.headers["x-uniwizard-backend"] == "gpt"
    assert "Simulated answer" in (raw.parse().choices[0].message.content or "")
    assert "auto" in [m.id for m in client.models.list().data]


def test_route_json_has_the_design_brief_shape(up: dict[str, str]) -> None:
    r = cli(up, "route", "--json", "Analyze the trade-offs between event sourcing and CRUD")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {"backend", "category", "chain", "reasons", "skipped"} <= set(data)
    assert (data["backend"], data["category"]) == ("claude", "reasoning")
    assert data["chain"][0] == "claude"
    plain = cli(up, "route", "-", stdin="What's the status of the nightly backup job?")
    assert plain.returncode == 0
    assert "backend:  local" in plain.stdout and "chain:" in plain.stdout


def test_think_json_names_backend_attempts_cost_and_trace(up: dict[str, str]) -> None:
    r = cli(up, "think", "--json", "Who was the first emperor of Rome?")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {"text", "backend", "attempts", "cost_usd", "trace_id"} <= set(data)
    assert data["backend"] == "gpt" and data["text"]
    attempt = data["attempts"][0]
    assert {"backend", "outcome", "latency_ms", "input_tokens", "output_tokens", "cost_usd"} <= set(
        attempt
    )
    assert attempt["outcome"] == "success"
    assert data["cost_usd"] == pytest.approx(attempt["cost_usd"])
    assert len(data["trace_id"]) == 32
    streamed = cli(up, "think", "--stream", "Who was the first emperor of Rome?")
    assert streamed.returncode == 0, streamed.stderr
    assert "Simulated answer" in streamed.stdout
    pinned = cli(up, "think", "--json", "--backend", "grok", "hello there")
    assert json.loads(pinned.stdout)["backend"] == "grok"


def test_disable_enable_and_backends(up: dict[str, str]) -> None:
    r = cli(up, "disable", "gpt", "--reason", "maintenance", "--by", "ops")
    assert r.returncode == 0, r.stderr
    assert "disabled by ops: maintenance" in r.stdout
    table = cli(up, "backends")
    assert "disabled by ops: maintenance" in table.stdout
    rows = {b["key"]: b for b in json.loads(cli(up, "backends", "--json").stdout)["backends"]}
    assert rows["gpt"]["state"] == "disabled" and rows["gpt"]["disabled_by"] == "ops"
    assert set(rows) == {"local", "claude", "kimi", "gpt", "gemini", "grok"}
    moved = json.loads(cli(up, "think", "--json", "Who was the first emperor of Rome?").stdout)
    assert moved["backend"] != "gpt"
    assert cli(up, "enable", "gpt").returncode == 0
    rows = {b["key"]: b for b in json.loads(cli(up, "backends", "--json").stdout)["backends"]}
    assert rows["gpt"]["state"] != "disabled"
    unknown = cli(up, "disable", "nope")
    assert unknown.returncode == 1 and "unknown backend 'nope'" in unknown.stderr


def test_usage_totals(up: dict[str, str]) -> None:
    cli(up, "think", "Who was the first emperor of Rome?")
    data = json.loads(cli(up, "usage", "--json").stdout)
    assert data["total"]["attempts"] >= 1
    assert data["total"]["cost_usd"] == pytest.approx(sum(b["cost_usd"] for b in data["backends"]))
    for key in ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert data["total"][key] == sum(b[key] for b in data["backends"])
    table = cli(up, "usage").stdout.splitlines()
    assert table[0].split() == [
        "BACKEND",
        "ATTEMPTS",
        "OK",
        "IN",
        "TOK",
        "CACHE",
        "RD",
        "CACHE",
        "WR",
        "OUT",
        "TOK",
        "REASONING",
        "COST",
        "USD",
    ]
    assert table[-1].startswith("(CACHE RD and CACHE WR are part of IN TOK")


def test_think_with_a_tools_file_as_a_user_runs_it(up: dict[str, str], tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(
        json.dumps(
            [
                {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ]
        )
    )
    ask = "Use get_weather for Lima."
    r = cli(up, "think", "--stream", "--backend", "gemini", "--tools", str(tools), ask)
    assert r.returncode == 0, r.stderr
    assert r.stdout == '[tool call get_weather {"city": "sim-city"}]\n'
    r = cli(up, "think", "--json", "--backend", "gemini", "--tools", str(tools), ask)
    call = json.loads(r.stdout)["tool_calls"][0]
    # gemini-2.5-flash thinks, so the simulator signed the call: the state to send back
    assert json.loads(call["provider_state"])["thought_signature"]
    bad = cli(up, "think", "--tools", str(tmp_path / "nope.json"), ask)
    assert bad.returncode == 2
    assert bad.stderr == f"uniwizard: --tools {tmp_path / 'nope.json'}: no such file\n"


def test_think_with_structured_output_routes_to_a_backend_that_can(
    up: dict[str, str], tmp_path: Path
) -> None:
    schema = tmp_path / "verdict.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"safe": {"type": "boolean"}, "why": {"type": "string"}},
                "required": ["safe", "why"],
            }
        )
    )
    review = "Review this pull request diff for race conditions"  # claude leads the chain
    r = cli(up, "think", "--json", "--json-schema", str(schema), review)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["backend"] != "claude"  # claude-sonnet-4 cannot return it: skipped
    answer = json.loads(out["text"])
    assert isinstance(answer["safe"], bool) and isinstance(answer["why"], str)
    r = cli(up, "route", "--json", "--json-object", review)
    skipped = {s["backend"]: s["reason"] for s in json.loads(r.stdout)["skipped"]}
    assert skipped["claude"] == skipped["grok"] == "no_output_format"
    r = cli(up, "think", "--backend", "claude", "--json-object", review)
    assert r.returncode == 1 and "cannot return json_object output" in r.stderr, r.stderr


def test_failures_exit_non_zero_with_the_typed_error(up: dict[str, str]) -> None:
    r = cli(up, "think", "--json", "--private", "--backend", "gpt", "my secret diary")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["error"]["class"] == "no_backend"
    assert data["attempts"] == []
    empty = cli(up, "think", "   ")
    assert empty.returncode == 2 and "empty" in empty.stderr


def test_unreachable_router_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, UNIWIZARD_ROUTER_ADDR=f"127.0.0.1:{free_port()}")
    r = cli(env, "route", "hello")
    assert r.returncode == 3
    assert "cannot reach router_svc" in r.stderr and "Traceback" not in r.stderr


def test_rate_an_answer_then_see_what_was_learned(up: dict[str, str]) -> None:
    answered = json.loads(cli(up, "think", "--json", "Who was the first emperor of Rome?").stdout)
    rid = answered["request_id"]
    r = cli(up, "rate", rid, "4/5", "--label", "great")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"rated 0.75 (great): {answered['backend']}'s answer to a knowledge task\n"
    again = cli(up, "rate", "--json", rid, "0.1")
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"]["class"] == "already_exists"
    bad = cli(up, "rate", rid, "great")
    assert bad.returncode == 2 and "is not a number" in bad.stderr
    unknown = cli(up, "rate", "no-such-request", "0.5")
    assert unknown.returncode == 1 and "no answered request" in unknown.stderr
    deadline = time.monotonic() + 10
    while True:
        stats = json.loads(cli(up, "stats", "--json", "--category", "knowledge").stdout)
        rows = {s["backend"]: s for s in stats["stats"]}
        row = rows.get(answered["backend"])
        if row is not None and row["ratings"] >= 0.99:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.1)
    assert row["rated_quality"] == 0.75 and row["answers"] > 0 and row["latency_p50_ms"] > 0
    assert {s["category"] for s in stats["stats"]} == {"knowledge"}
    table = cli(up, "stats")
    assert table.returncode == 0
    assert "CATEGORY" in table.stdout and "knowledge" in table.stdout and "0.75" in table.stdout
