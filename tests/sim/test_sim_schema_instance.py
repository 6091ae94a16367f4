"""Unit tests of the schema instance generator and of structured answers (pure)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from uniwizard_sim.common import Conversation, OutputFormat
from uniwizard_sim.faults import parse_fault
from uniwizard_sim.schema_instance import MAX_DEPTH, instance
from uniwizard_sim.textgen import (
    answer_lead,
    answer_text,
    count_tokens,
    plan_answer,
    split_chunks,
    structured_text,
)


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    zip_code: str = Field(min_length=5, max_length=5)


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=130)
    score: float = Field(gt=0, lt=1)
    kind: Literal["admin", "user"]
    color: Color
    address: Address
    previous: list[Address] = Field(min_length=2)
    nickname: str | None = None
    tags: tuple[str, int] = ("a", 1)


class Tree(BaseModel):
    value: int
    children: list[Tree]
    parent: Tree | None


SCHEMAS: list[tuple[str, dict[str, Any]]] = [
    ("empty", {}),
    ("string", {"type": "string"}),
    ("type list", {"type": ["null", "integer"]}),
    ("only null", {"type": "null"}),
    ("const", {"const": {"a": [1, 2]}}),
    ("enum", {"type": "integer", "enum": [7, 8]}),
    ("boolean", {"type": "boolean"}),
    ("short string", {"type": "string", "maxLength": 4}),
    ("long string", {"type": "string", "minLength": 200}),
    ("formats", {"type": "array", "prefixItems": [{"type": "string", "format": "date-time"}]}),
    ("integer above", {"type": "integer", "minimum": 10}),
    ("integer exclusive", {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 5}),
    ("number below", {"type": "number", "maximum": -2.5}),
    ("number narrow", {"type": "number", "exclusiveMinimum": 0.1, "exclusiveMaximum": 0.2}),
    ("multiple", {"type": "integer", "minimum": 5, "multipleOf": 4}),
    (
        "draft4 exclusive",
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "number",
            "minimum": 1,
            "exclusiveMinimum": True,
        },
    ),
    (
        "array",
        {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3},
    ),
    ("no items allowed", {"type": "array", "maxItems": 0}),
    (
        "object",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            "required": ["b"],
            "additionalProperties": False,
        },
    ),
    ("min properties", {"type": "object", "minProperties": 2}),
    ("untyped object", {"properties": {"x": {"enum": ["only"]}}, "required": ["x"]}),
    ("any of", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    ("one of", {"oneOf": [{"type": "boolean"}, {"type": "string"}]}),
    (
        "all of",
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "null"}}, "required": ["b"]},
            ]
        },
    ),
    (
        "definitions",
        {
            "definitions": {"Id": {"type": "integer", "minimum": 100}},
            "type": "object",
            "properties": {"id": {"$ref": "#/definitions/Id"}},
            "required": ["id"],
        },
    ),
    ("pydantic", Person.model_json_schema()),
    ("recursive", Tree.model_json_schema()),
    (
        "root recursion",
        {
            "type": "object",
            "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
            "required": ["next"],
        },
    ),
    ("unknown keywords", {"type": "string", "x-kind": 1, "pattern": "^.*$", "title": "T"}),
]


@pytest.mark.parametrize("schema", [s for _, s in SCHEMAS], ids=[n for n, _ in SCHEMAS])
def test_instance_validates(schema: dict[str, Any]) -> None:
    value = instance(schema, "some text")
    jsonschema.validate(value, schema)
    assert instance(schema, "some text") == value  # deterministic
    json.dumps(value)


def test_instance_values() -> None:
    assert instance({}, "t") == "t"
    assert instance({"type": "string", "minLength": 5}, "ab") == "ab ab"
    assert instance({"type": ["null", "integer"]}) == 1
    assert instance({"type": "number"}) == 1.0
    assert instance({"type": "integer", "minimum": 5, "multipleOf": 4}) == 8
    assert instance({"type": "string", "format": "email"}) == "sim@example.com"
    assert instance({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == 1
    obj = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    assert instance({**obj, "required": ["b"]}, "t") == {"b": "t"}
    assert instance({"type": "array", "items": {"type": "boolean"}}) == [True]


def test_pydantic_round_trip() -> None:
    person = Person.model_validate(instance(Person.model_json_schema(), "Ann"))
    assert person.name == "Ann" and person.kind == "admin" and person.color is Color.RED
    assert 18 <= person.age <= 130 and 0 < person.score < 1
    assert len(person.address.zip_code) == 5 and len(person.previous) == 2
    assert person.nickname is None


def test_recursive_schema_terminates() -> None:
    tree = Tree.model_validate(instance(Tree.model_json_schema()))
    depth = 0
    node: Tree | None = tree
    while node is not None and node.children:
        node, depth = node.children[0], depth + 1
    assert 0 < depth <= MAX_DEPTH
    assert tree.parent is not None  # the first anyOf branch, until the depth limit
    # a schema with no finite instance still terminates
    endless = {"type": "object", "properties": {"x": {"$ref": "#"}}, "required": ["x"]}
    assert isinstance(instance(endless), dict)
    assert instance({"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}, "t") == "t"


def test_gemini_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "title": {"type": "STRING", "maxLength": "3"},
            "count": {"type": "INTEGER", "minimum": 2},
            "ratio": {"type": "NUMBER"},
            "ok": {"type": "BOOLEAN"},
            "mood": {"type": "STRING", "format": "enum", "enum": ["sad", "glad"]},
            "items": {"type": "ARRAY", "items": {"type": "STRING"}, "min_items": "2"},
            "note": {"type": "STRING", "nullable": True},
        },
        "required": ["title", "count", "ratio", "ok", "mood", "items"],
        "property_ordering": ["ok", "title"],
    }
    value = instance(schema, "text")
    assert value == {
        "ok": True,
        "title": "tex",
        "count": 2,
        "ratio": 1.0,
        "mood": "sad",
        "items": ["text", "text"],
    }
    assert list(value)[:2] == ["ok", "title"]


def conv(output: OutputFormat | None, **kw: Any) -> Conversation:
    return Conversation(
        model="m", prompt_texts=("hi there",), last_user_text="hi there", output=output, **kw
    )


def test_structured_answers() -> None:
    plain = plan_answer(conv(OutputFormat()), None, "c")
    assert plain.text is not None
    assert json.loads(plain.text) == {"answer": answer_text("m", "hi there", 0)}
    assert plain.completion_tokens == count_tokens(plain.text)
    assert plain.chunks == split_chunks(plain.text) and len(plain.chunks) > 3
    schema = {"type": "object", "properties": {"s": {"type": "string"}}, "required": ["s"]}
    typed = plan_answer(conv(OutputFormat(schema)), None, "c")
    assert typed.text == structured_text(conv(OutputFormat(schema)))
    assert json.loads(typed.text or "") == {"s": answer_lead("m", "hi there")}
    assert typed.completion_tokens == count_tokens(typed.text or "")
    assert typed.finish == "stop"
    # limits and content faults apply to the JSON text as to prose
    cut = plan_answer(conv(OutputFormat(schema), max_tokens=3), None, "c")
    assert cut.finish == "length" and cut.completion_tokens == 3 and cut.text == '{"s'
    half = plan_answer(conv(OutputFormat(schema)), parse_fault({"kind": "truncated"}), "c")
    assert half.finish == "length" and (half.text or "").startswith('{"s": "Simulated')
    assert plan_answer(conv(None), None, "c").text == answer_text("m", "hi there", 0)
