"""What ``route`` and ``think`` read from files besides the task: ``--tools FILE`` (the tools the
answer may call) and ``--json-object`` / ``--json-schema FILE`` (structured output). Each
problem is a :class:`~uniwizard.cli_common.CliError` naming the option, the file and what is
wrong."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from uniwizard.cli_common import CliError
from uniwizard.types import TOOL_NAME_RE, OutputFormat, ResponseFormat, ToolDef

__all__ = ["load_schema", "load_tools", "response_format"]


_TOOL_KEYS = ("name", "description", "parameters")


def load_tools(path: str) -> tuple[ToolDef, ...]:
    """``--tools FILE``: a JSON list of ``{"name", "description", "parameters"}`` (parameters: a
    JSON Schema object; OpenAI's ``{"type": "function", "function": {...}}`` is taken too).
    Any problem is a CliError naming the file, the tool and what is wrong."""
    where = f"--tools {path}"
    data = _read_json(path, where)
    if not isinstance(data, list):
        raise CliError(f"{where}: must hold a JSON list of tools, not a JSON {_json_type(data)}")
    if not data:
        raise CliError(f"{where}: the list of tools is empty")
    tools: list[ToolDef] = []
    for i, item in enumerate(data):
        tools.append(_tool(item, f"{where}: tool {i + 1}"))
    names = [t.name for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CliError(f"{where}: tool name {dupes[0]!r} is used more than once")
    return tuple(tools)


def _tool(item: Any, where: str) -> ToolDef:
    if isinstance(item, dict) and item.get("type") == "function" and "function" in item:
        item = item["function"]  # OpenAI's tools list, as it is
    if not isinstance(item, dict):
        raise CliError(f"{where}: must be an object {{name, description, parameters}}")
    unknown = [k for k in item if k not in _TOOL_KEYS]
    if unknown:
        raise CliError(f"{where}: unknown key {unknown[0]!r} (a tool has {', '.join(_TOOL_KEYS)})")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise CliError(f'{where}: needs a "name" (a string)')
    where = f"{where} ({name!r})"
    if not TOOL_NAME_RE.match(name):
        raise CliError(
            f"{where}: a name is a letter or '_' then letters, digits, '_' or '-', "
            "at most 64 characters"
        )
    description = item.get("description", "")
    if not isinstance(description, str):
        raise CliError(f'{where}: "description" must be a string')
    parameters = item.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict):
        raise CliError(f'{where}: "parameters" must be a JSON Schema object')
    if str(parameters.get("type", "object")).lower() != "object":  # Gemini writes OBJECT
        raise CliError(
            f'{where}: "parameters" must describe an object ("type": "object"), '
            f"got type {parameters['type']!r}"
        )
    return ToolDef(name, description, json.dumps(parameters, ensure_ascii=False))


def load_schema(path: str) -> ResponseFormat:
    """``--json-schema FILE``: the answer must be JSON valid against the JSON Schema object in
    FILE (named after the file). Any problem is a CliError naming the file."""
    where = f"--json-schema {path}"
    schema = _read_json(path, where)
    if not isinstance(schema, dict):
        raise CliError(f"{where}: must hold a JSON Schema object, not a JSON {_json_type(schema)}")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", Path(path).stem)[:64] or "answer"
    return ResponseFormat(OutputFormat.JSON_SCHEMA, name, json.dumps(schema, ensure_ascii=False))


def response_format(args: argparse.Namespace) -> ResponseFormat | None:
    schema_file = getattr(args, "json_schema", None)
    if schema_file:
        return load_schema(schema_file)
    if getattr(args, "json_object", False):
        return ResponseFormat(OutputFormat.JSON_OBJECT)
    return None


def _read_json(path: str, where: str) -> Any:
    """The JSON document in ``path``; a CliError starting with ``where`` when it cannot be."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{where}: cannot read it ({exc})") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"{where}: not valid JSON ({exc})") from None


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
