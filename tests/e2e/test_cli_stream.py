"""``uniwizard think --stream`` with a tool call, against the real services on the simulator.

The command line has no option to offer tools, and the simulator (like a real model) only calls
a tool the request offers, so these run the CLI in-process with the task it builds given one
tool. Everything else is as a user runs it: real channels, real sockets, the real stack.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator

import pytest

from tests.client.stack_thread import StackThread
from tests.stack import Stack
from uniwizard import cli
from uniwizard.types import Task, ToolDef

WEATHER = ToolDef(
    "get_weather",
    "The current weather in a city.",
    json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)
ASK = "Use get_weather to tell me if it rains in Paris."


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with StackThread() as s:
        yield s


@pytest.fixture
def with_tool(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIWIZARD_ROUTER_ADDR", stack.router.target)
    build = cli.build_task

    def build_with_tool(args: argparse.Namespace) -> Task:
        task = build(args)
        return dataclasses.replace(
            task, request=dataclasses.replace(task.request, tools=(WEATHER,))
        )

    monkeypatch.setattr(cli, "build_task", build_with_tool)


def test_think_stream_prints_each_tool_call_on_its_own_line(
    with_tool: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["think", "--stream", ASK]) == 0
    out, err = capsys.readouterr()
    assert out == '[tool call get_weather {"city": "sim-city"}]\n'
    assert err.startswith("— ") and ", trace " in err  # the trailer as always


def test_think_stream_json_lists_the_streamed_tool_calls(
    with_tool: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["think", "--stream", "--json", ASK]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert err == ""
    assert [(c["name"], json.loads(c["arguments"])) for c in data["tool_calls"]] == [
        ("get_weather", {"city": "sim-city"})
    ]
    assert data["tool_calls"][0]["id"]
    assert data["finish_reason"] == "tool_calls" and data["text"] == ""
    # the same answer without streaming has the same shape
    assert cli.main(["think", "--json", ASK]) == 0
    unary = json.loads(capsys.readouterr().out)
    assert set(unary) == set(data)
    assert [c["name"] for c in unary["tool_calls"]] == ["get_weather"]


def test_tool_call_line() -> None:
    assert cli.tool_call_line("f", '{"a":1,"b":"é"}') == '[tool call f {"a": 1, "b": "é"}]'
    assert cli.tool_call_line("f", "") == "[tool call f {}]"
    assert cli.tool_call_line("f", "{not json") == "[tool call f {not json]"  # as sent
