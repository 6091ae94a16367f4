"""``uniwizard think --tools FILE`` (with and without ``--stream``), against the real services on
the simulator: the CLI reads the tool definitions from the file, the router routes them, the
caller offers them to the provider in its wire format, and the simulator (like a real model)
calls a tool the request offers. Real channels, real sockets, the real stack; the CLI runs
in-process so its output can be read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.stack_thread import StackThread
from tests.stack import Stack
from uniwizard import cli

WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ASK = "Use get_weather to tell me if it rains in Paris."


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with StackThread() as s:
        yield s


@pytest.fixture
def tools_file(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("UNIWIZARD_ROUTER_ADDR", stack.router.target)
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([WEATHER]))
    return str(path)


def test_think_stream_prints_each_tool_call_on_its_own_line(
    tools_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["think", "--stream", "--tools", tools_file, ASK]) == 0
    out, err = capsys.readouterr()
    assert out == '[tool call get_weather {"city": "sim-city"}]\n'
    assert err.startswith("— ") and ", trace " in err  # the trailer as always


def test_think_stream_json_lists_the_streamed_tool_calls(
    tools_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["think", "--stream", "--json", "--tools", tools_file, ASK]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert err == ""
    assert [(c["name"], json.loads(c["arguments"])) for c in data["tool_calls"]] == [
        ("get_weather", {"city": "sim-city"})
    ]
    assert data["tool_calls"][0]["id"]
    assert data["finish_reason"] == "tool_calls" and data["text"] == ""
    assert data["provider_finish_reason"] == "tool_calls"  # gpt: OpenAI's own word
    # the same answer without streaming has the same shape
    assert cli.main(["think", "--json", "--tools", tools_file, ASK]) == 0
    unary = json.loads(capsys.readouterr().out)
    assert set(unary) == set(data)
    assert [c["name"] for c in unary["tool_calls"]] == ["get_weather"]


def test_the_tools_reach_the_provider_as_its_own_tool_definitions(
    stack: Stack, tools_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["think", "--json", "--backend", "claude", "--tools", tools_file, ASK]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backend"] == "claude" and data["provider_finish_reason"] == "tool_use"
    sent = [r for r in stack.sim.requests() if r["target"] == "claude"][-1]["body"]
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": WEATHER["description"],
            "input_schema": WEATHER["parameters"],
        }
    ]


def test_without_tools_nothing_is_offered_and_the_answer_is_text(
    tools_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["think", "--json", ASK]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tool_calls"] == [] and data["text"]


def test_tool_call_line() -> None:
    assert cli.tool_call_line("f", '{"a":1,"b":"é"}') == '[tool call f {"a": 1, "b": "é"}]'
    assert cli.tool_call_line("f", "") == "[tool call f {}]"
    assert cli.tool_call_line("f", "{not json") == "[tool call f {not json]"  # as sent
