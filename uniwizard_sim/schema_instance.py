"""Deterministic minimal instances of JSON Schemas, for structured-output answers.

:func:`instance` builds the smallest value that validates against a schema (JSON Schema,
or Gemini's OpenAPI subset with upper-case type names and snake_case keywords):

- ``const`` / ``enum`` (first value) win at any level;
- ``type``: a list takes its first non-null entry; absent, ``properties`` means object
  and ``items`` array; a schema with nothing to go by gets a string;
- object: its ``required`` properties (in ``propertyOrdering`` order when given), plus
  optional ones up to ``minProperties``;
- array: ``max(minItems, 1)`` items, capped by ``maxItems`` (``prefixItems`` first);
- string: the given text (or a fixed value for a known ``format``), fitted to
  ``minLength`` / ``maxLength``; ``pattern`` is ignored;
- number / integer: 1, or the first value within ``minimum`` / ``maximum`` (and their
  exclusive forms) and ``multipleOf``; boolean: true; null: null;
- ``anyOf`` / ``oneOf``: the first branch; ``allOf``: the branches merged;
- ``$ref``: a JSON pointer into the root schema (``#/$defs/X``, ``#/definitions/X``, ``#``).

Past :data:`MAX_DEPTH` nested levels, or once :data:`MAX_NODES` values are built, only
what is required is built (arrays get ``minItems`` items, ``anyOf`` prefers a null
branch), so recursive schemas terminate and stay small.
Unknown keywords are ignored.
"""

from __future__ import annotations

import copy
import math
from typing import Any

MAX_DEPTH = 8
MAX_NODES = 500
MAX_STEPS = 256  # schema hops on one path; only a schema with no finite instance gets there
FORMATS: dict[str, str] = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "duration": "PT1S",
    "email": "sim@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


def instance(schema: Any, text: str = "sim") -> Any:
    """A minimal value that validates against ``schema``; strings default to ``text``."""
    root = schema if isinstance(schema, dict) else {}
    return _Builder(root, text).build(root, 0, 0)


def _kw(schema: dict[str, Any], camel: str, snake: str | None = None) -> Any:
    """A keyword in JSON Schema spelling, or in Gemini's snake_case one."""
    value = schema.get(camel)
    return schema.get(snake) if value is None and snake else value


def _int(value: Any) -> int | None:
    """An integer keyword; Gemini sends int64 fields as strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _type_of(schema: dict[str, Any]) -> str | None:
    raw = schema.get("type")
    if isinstance(raw, list):
        names = [str(t).lower() for t in raw]
        raw = next((t for t in names if t != "null"), "null" if names else None)
    name = str(raw).lower() if raw is not None else None
    if name in _TYPES:
        return name
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra``'s keywords over ``base``'s; properties and required are united."""
    out = {**base, **extra}
    if isinstance(base.get("properties"), dict) and isinstance(extra.get("properties"), dict):
        out["properties"] = {**base["properties"], **extra["properties"]}
    if isinstance(base.get("required"), list) and isinstance(extra.get("required"), list):
        known = base["required"]
        out["required"] = known + [r for r in extra["required"] if r not in known]
    return out


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    lo, hi = _num(schema.get("minimum")), _num(schema.get("maximum"))
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    lo_open = hi_open = False
    if isinstance(xlo, bool):  # draft 4: a flag on minimum
        lo_open = xlo and lo is not None
    elif _num(xlo) is not None:
        lo, lo_open = _num(xlo), True
    if isinstance(xhi, bool):
        hi_open = xhi and hi is not None
    elif _num(xhi) is not None:
        hi, hi_open = _num(xhi), True

    def fits(v: float) -> bool:
        above = lo is None or v > lo or (v == lo and not lo_open)
        below = hi is None or v < hi or (v == hi and not hi_open)
        return above and below

    picks: list[float] = [1.0]
    for bound in (lo, hi):
        if bound is not None:
            picks += [bound, math.floor(bound) + 1, math.ceil(bound) - 1, bound + 1, bound - 1]
    if lo is not None and hi is not None:
        picks += [(lo + hi) / 2, math.floor((lo + hi) / 2)]
    step = _num(schema.get("multipleOf"))
    if step is not None and step > 0:
        picks = [f(p / step) * step for p in picks for f in (math.ceil, math.floor)]
    if integer:
        picks = [p for p in picks if float(p).is_integer()] or [1.0]
    value = next((p for p in picks if fits(p)), picks[0])
    return int(value) if integer else float(value)


def _string(schema: dict[str, Any], text: str) -> str:
    out = FORMATS.get(str(schema.get("format", "")).lower(), text)
    lo = _int(_kw(schema, "minLength", "min_length"))
    hi = _int(_kw(schema, "maxLength", "max_length"))
    if lo is not None and len(out) < lo:
        out = ((out + " ") * (lo // (len(out) + 1) + 1))[:lo]
    if hi is not None and len(out) > hi:
        out = out[:hi]
    return out


class _Builder:
    def __init__(self, root: dict[str, Any], text: str) -> None:
        self.root = root
        self.text = text
        self.nodes = 0

    def _minimal(self, depth: int) -> bool:
        return depth >= MAX_DEPTH or self.nodes >= MAX_NODES

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow ``$ref`` (keywords beside it apply too)."""
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return schema
            target: Any = self.root
            for token in ref[1:].lstrip("/").split("/") if ref != "#" else []:
                token = token.replace("~1", "/").replace("~0", "~")
                if isinstance(target, list) and token.isdigit() and int(token) < len(target):
                    target = target[int(token)]
                else:
                    target = target.get(token) if isinstance(target, dict) else None
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = _merge(target, rest) if isinstance(target, dict) else rest
        return schema

    def build(self, schema: Any, depth: int, steps: int) -> Any:
        if steps >= MAX_STEPS:
            return None
        if not isinstance(schema, dict):
            return self.text if schema is True else None
        self.nodes += 1
        schema = self._resolve(schema)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return copy.deepcopy(enum[0])
        branches = _kw(schema, "anyOf", "any_of") or schema.get("oneOf")
        if isinstance(branches, list) and branches:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "any_of", "oneOf")}
            return self.build(_merge(rest, self._branch(branches, depth)), depth, steps + 1)
        parts = schema.get("allOf")
        if isinstance(parts, list) and parts:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                if isinstance(part, dict):
                    merged = _merge(merged, self._resolve(part))
            return self.build(merged, depth, steps + 1)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, depth, steps)
        if kind == "array":
            return self._array(schema, depth, steps)
        if kind in ("number", "integer"):
            return _number(schema, kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema, self.text)

    def _branch(self, branches: list[Any], depth: int) -> dict[str, Any]:
        """The first branch; past the depth limit, a null branch when there is one."""
        dicts = [self._resolve(b) for b in branches if isinstance(b, dict)]
        if self._minimal(depth):
            for b in dicts:
                if _type_of(b) == "null" or ("const" in b and b["const"] is None):
                    return b
        return dicts[0] if dicts else {}

    def _object(self, schema: dict[str, Any], depth: int, steps: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        order = _kw(schema, "propertyOrdering", "property_ordering")
        order = [p for p in order if isinstance(p, str)] if isinstance(order, list) else []
        order += [p for p in props if p not in order]
        names = [p for p in order if p in required] + [r for r in required if r not in order]
        wanted = _int(_kw(schema, "minProperties", "min_properties")) or 0
        names += [p for p in order if p not in names][: max(0, wanted - len(names))]
        extra = schema.get("additionalProperties", {})
        while len(names) < wanted and extra is not False:
            names.append(f"key{len(names)}")
        return {name: self.build(props.get(name, extra), depth + 1, steps + 1) for name in names}

    def _array(self, schema: dict[str, Any], depth: int, steps: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        prefix = prefix if isinstance(prefix, list) else []
        lo = _int(_kw(schema, "minItems", "min_items")) or 0
        hi = _int(_kw(schema, "maxItems", "max_items"))
        count = lo if self._minimal(depth) else max(lo, 1)
        if hi is not None:
            count = min(count, hi)
        if items is False:
            count = min(count, len(prefix))
        return [
            self.build(prefix[i] if i < len(prefix) else items, depth + 1, steps + 1)
            for i in range(count)
        ]
