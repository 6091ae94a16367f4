"""``--tools FILE``: what a tools file may hold, and one clear error (naming the file, the tool
and the problem, exit 2, nothing sent) for everything it may not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uniwizard import cli, cli_inputs
from uniwizard.types import OutputFormat, ToolDef

WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def write(tmp_path: Path, content: object) -> str:
    path = tmp_path / "tools.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_a_list_of_tools_becomes_tool_definitions(tmp_path: Path) -> None:
    openai_style = {"type": "function", "function": {"name": "get_time", "description": "Now."}}
    tools = cli_inputs.load_tools(write(tmp_path, [WEATHER, openai_style, {"name": "_ping"}]))
    assert tools[0] == ToolDef(
        "get_weather", WEATHER["description"], json.dumps(WEATHER["parameters"])
    )
    assert (tools[1].name, tools[1].description) == ("get_time", "Now.")
    # no parameters: an object schema without properties
    assert json.loads(tools[2].parameters_json) == {"type": "object", "properties": {}}


BAD = [
    ("missing.json", None, "no such file"),
    ("t.json", "[{", "not valid JSON"),
    ("t.json", {"tools": [WEATHER]}, "must hold a JSON list of tools, not a JSON object"),
    ("t.json", [], "the list of tools is empty"),
    ("t.json", ["get_weather"], "tool 1: must be an object {name, description, parameters}"),
    ("t.json", [{"description": "no name"}], 'tool 1: needs a "name" (a string)'),
    ("t.json", [WEATHER, {"name": "get weather"}], "tool 2 ('get weather'): a name is a letter"),
    ("t.json", [{"name": "f", "params": {}}], "tool 1: unknown key 'params'"),
    ("t.json", [{"name": "f", "parameters": "{}"}], '"parameters" must be a JSON Schema object'),
    (
        "t.json",
        [{"name": "f", "parameters": {"type": "string"}}],
        'must describe an object ("type": "object"), got type \'string\'',
    ),
    ("t.json", [{"name": "f", "description": 3}], '"description" must be a string'),
    ("t.json", [WEATHER, WEATHER], "tool name 'get_weather' is used more than once"),
]


BAD_SCHEMA = [
    ("missing.json", None, "no such file"),
    ("broken.json", "{", "not valid JSON"),
    ("list.json", [1], "must hold a JSON Schema object, not a JSON list"),
]
CASES = [("--tools", *b) for b in BAD] + [("--json-schema", *b) for b in BAD_SCHEMA]


@pytest.mark.parametrize(
    ("option", "name", "content", "problem"), CASES, ids=[f"{c[0]} {c[3][:30]}" for c in CASES]
)
def test_a_bad_input_file_is_one_clear_error_and_nothing_is_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    name: str,
    content: object,
    problem: str,
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    # nothing listens here: reaching the router would be exit 3, not 2
    monkeypatch.setenv("UNIWIZARD_ROUTER_ADDR", "127.0.0.1:1")
    assert cli.main(["think", option, str(path), "What is the weather?"]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"uniwizard: {option} {path}: "), err
    assert problem in err, err
    assert err.count("\n") == 1


def test_a_schema_file_becomes_the_request_s_structured_output(tmp_path: Path) -> None:
    path = tmp_path / "trip plan.json"
    path.write_text(json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}))
    fmt = cli_inputs.load_schema(str(path))
    assert (fmt.type, fmt.name) == (OutputFormat.JSON_SCHEMA, "trip_plan")
    assert json.loads(fmt.schema_json)["properties"] == {"city": {"type": "string"}}
    with pytest.raises(SystemExit):  # one or the other
        cli.main(["think", "--json-object", "--json-schema", str(path), "Plan a trip."])
