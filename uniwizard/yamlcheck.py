"""Checked YAML: the one way Uniwizard reads its YAML files (``backends.yaml``, ``routing.yaml``).

Every problem is one :class:`ConfigError` whose ``str()`` is a single line naming the file, the
line, the key path and what is wrong, e.g.::

    configs/routing.yaml:14: categories[1].prefer[1]: must be a non-empty string, got nothing

:func:`compose` turns the text into nodes, so every value keeps its line, and rejects what is
wrong with the document as a whole: YAML syntax errors, nesting too deep to read, unknown tags,
keys that are not plain strings and duplicate keys. It returns the root as an :class:`Entry`
(a node with its file, key path and line). The getters (:func:`mapping`, :func:`sequence`,
:func:`string`, :func:`integer`, :func:`number`, :func:`boolean`, :func:`strings`) check one
entry against what it must be and return a Python value, or, for a mapping or a list, child
entries whose key paths (``a.b[2].c``) and lines follow along. Merge keys (``<<: *base``) are
applied when a mapping is read. Only :func:`read_text` touches the file system; nothing here
changes the nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

__all__ = [
    "ConfigError",
    "Entry",
    "boolean",
    "compose",
    "integer",
    "is_mapping",
    "is_null",
    "mapping",
    "number",
    "read_text",
    "sequence",
    "string",
    "strings",
]

_YAML = "tag:yaml.org,2002:"
_MAP, _SEQ, _NULL = _YAML + "map", _YAML + "seq", _YAML + "null"
_MERGE, _VALUE = _YAML + "merge", _YAML + "value"  # the keys << and =
_TAGS = frozenset(t for t in SafeConstructor.yaml_constructors if t is not None)


class ConfigError(Exception):
    """A configuration problem, with where it is and what is wrong. ``str()`` is one line:
    ``file:line: key.path: problem`` (the line and key path when known)."""

    def __init__(self, path: str, key_path: str, message: str, line: int | None = None):
        self.path, self.key_path, self.message, self.line = path, key_path, message, line
        where = f"{path}:{line}" if line else path
        text = f"{where}: {key_path}: {message}" if key_path else f"{where}: {message}"
        super().__init__(_one_line(text))


@dataclass(frozen=True, slots=True)
class Entry:
    """One value of a document and where it is: a mapping value's line is its key's line, a
    list item's line (and the root's) where the item starts."""

    file: str
    key_path: str
    line: int
    node: yaml.Node

    def error(self, message: str) -> ConfigError:
        """A problem with this value."""
        return ConfigError(self.file, self.key_path, message, self.line)

    def missing(self, key: str, message: str = "required key is missing") -> ConfigError:
        """This mapping lacks ``key``: reported at that key's path, on the mapping's first line."""
        return ConfigError(self.file, _join(self.key_path, key), message, _line(self.node))


# --- the file and the document -----------------------------------------------------------------


def read_text(path: str) -> str:
    """The file's text; ConfigError naming the file when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        reason = "file not found"
    except IsADirectoryError:
        reason = "it is a directory"
    except PermissionError:
        reason = "permission denied"
    except UnicodeDecodeError:
        reason = "not UTF-8 text"
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
    raise ConfigError(path, "", f"cannot read: {reason}")


def compose(text: str, path: str) -> Entry | None:
    """The document's root, or None when it holds nothing (empty, only comments, a bare null).
    ``path`` names the file in messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, "", f"invalid YAML: {_problem(exc)}", line) from None
    except RecursionError:
        raise ConfigError(path, "", "invalid YAML: nested too deeply") from None
    if root is None or root.tag == _NULL:
        return None
    _check_nodes(root, path)
    return Entry(path, "", _line(root), root)


def _check_nodes(root: yaml.Node, path: str) -> None:
    """Tags, keys and duplicate keys, in document order; each node once, so aliases cost
    nothing and recursive ones end."""
    seen: set[int] = set()
    todo: list[tuple[yaml.Node, str]] = [(root, "")]
    while todo:
        node, kp = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in _TAGS:
            raise ConfigError(path, kp, f"unknown tag {_tag_name(node.tag)}", _line(node))
        children: list[tuple[yaml.Node, str]] = []
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for knode, vnode in node.value:
                if knode.tag == _MERGE:  # '<<': applied by mapping()
                    children.append((vnode, kp))
                    continue
                line = _line(knode)
                if not isinstance(knode, yaml.ScalarNode):
                    raise ConfigError(path, kp, "keys must be plain strings", line)
                sub = _join(kp, knode.value)
                if knode.tag not in _TAGS and knode.tag != _VALUE:
                    raise ConfigError(path, sub, f"unknown tag {_tag_name(knode.tag)}", line)
                if knode.value in keys:
                    raise ConfigError(path, sub, "duplicate key", line)
                keys.add(knode.value)
                children.append((vnode, sub))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, f"{kp}[{i}]") for i, item in enumerate(node.value)]
        todo.extend(reversed(children))


# --- typed getters -----------------------------------------------------------------------------


def mapping(
    entry: Entry, allowed: tuple[str, ...] | None = None, required: tuple[str, ...] = ()
) -> dict[str, Entry]:
    """Key -> value entry. ``allowed``: any other key is an error naming the allowed ones;
    ``required``: keys that must be present."""
    node = entry.node
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
        raise entry.error(f"must be a mapping, got {_describe(_value(entry))}")
    try:
        pairs = _pairs(entry, node, {})
    except RecursionError:
        raise entry.error("merges ('<<') nested too deeply") from None
    out = {
        key: Entry(entry.file, _join(entry.key_path, key), _line(knode), vnode)
        for key, (knode, vnode) in pairs.items()
    }
    if allowed is not None:
        for key, sub in out.items():
            if key not in allowed:
                raise sub.error(f"unknown key {key!r} (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in out:
            raise entry.missing(key)
    return out


def sequence(entry: Entry) -> list[Entry]:
    """The list's items, each with its index in the key path."""
    return _items(entry, "a list")


def string(entry: Entry) -> str:
    """A string with something besides whitespace in it."""
    value = _value(entry)
    if not isinstance(value, str) or not value.strip():
        raise entry.error(f"must be a non-empty string, got {_describe(value)}")
    return value


def integer(entry: Entry, minimum: int | None = None) -> int:
    """A whole number (not a boolean), at least ``minimum`` when given."""
    value = _value(entry)
    if isinstance(value, bool) or not isinstance(value, int):
        raise entry.error(f"must be a whole number, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise entry.error(f"must be at least {minimum}, got {_show(value)}")
    return value


def number(entry: Entry, *, positive: bool = False, non_negative: bool = False) -> float:
    """A finite number (whole or not, not a boolean) as a float; ``positive``: above 0,
    ``non_negative``: 0 or above."""
    value = _value(entry)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise entry.error(f"must be a number, got {_describe(value)}")
    try:
        result = float(value)
    except OverflowError:  # a whole number too large for a float
        result = math.inf
    if not math.isfinite(result):
        raise entry.error(f"must be a finite number, got {_show(value)}")
    if positive and result <= 0:
        raise entry.error(f"must be a positive number, got {_show(value)}")
    if non_negative and result < 0:
        raise entry.error(f"must not be negative, got {_show(value)}")
    return result


def boolean(entry: Entry) -> bool:
    """true or false."""
    value = _value(entry)
    if not isinstance(value, bool):
        raise entry.error(f"must be true or false, got {_describe(value)}")
    return value


def strings(entry: Entry) -> tuple[str, ...]:
    """A list whose items are all strings (empty ones included)."""
    out: list[str] = []
    for item in _items(entry, "a list of strings"):
        value = _value(item)
        if not isinstance(value, str):
            raise item.error(f"must be a string, got {_describe(value)}")
        out.append(value)
    return tuple(out)


def is_null(entry: Entry) -> bool:
    """The value is left empty (``key:``, ``~`` or ``null``)."""
    return isinstance(entry.node, yaml.ScalarNode) and entry.node.tag == _NULL


def is_mapping(entry: Entry) -> bool:
    """The value is a mapping (for a value that may be written short or as a mapping)."""
    return isinstance(entry.node, yaml.MappingNode) and entry.node.tag == _MAP


# --- helpers -----------------------------------------------------------------------------------


def _items(entry: Entry, what: str) -> list[Entry]:
    node = entry.node
    if not isinstance(node, yaml.SequenceNode) or node.tag != _SEQ:
        raise entry.error(f"must be {what}, got {_describe(_value(entry))}")
    return [
        Entry(entry.file, f"{entry.key_path}[{i}]", _line(item), item)
        for i, item in enumerate(node.value)
    ]


_Pairs = dict[str, tuple[yaml.Node, yaml.Node]]  # key -> (key node, value node)


def _pairs(entry: Entry, node: yaml.MappingNode, done: dict[int, _Pairs | None]) -> _Pairs:
    """The mapping's keys with its merge keys applied as YAML's merge key type defines:
    ``<<: *base`` or ``<<: [*a, *b]`` adds the keys of those mappings; the mapping's own keys
    win, then the earlier mapping listed. ``done`` holds each mapping's keys once worked out
    (None while in progress: a mapping that merges itself adds nothing more), so aliases cannot
    multiply the work."""
    if id(node) in done:
        return done[id(node)] or {}
    done[id(node)] = None
    merged: _Pairs = {}
    own: _Pairs = {}
    for knode, vnode in node.value:
        if knode.tag != _MERGE:
            own[str(knode.value)] = (knode, vnode)
            continue
        sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                message = "'<<' merges a mapping or a list of mappings"
                raise ConfigError(entry.file, entry.key_path, message, _line(source))
            merged.update(_pairs(entry, source, done))
    done[id(node)] = result = {**merged, **own}
    return result


def _value(entry: Entry) -> Any:
    """A scalar as Python (None, bool, int, float, str, ...); a list or mapping stays a node."""
    node = entry.node
    if not isinstance(node, yaml.ScalarNode):
        return node
    try:
        return SafeConstructor().construct_object(node)  # type: ignore[no-untyped-call]
    except Exception:  # a bad tagged scalar: !!int abc, !!bool maybe, !!timestamp x
        raise entry.error(f"cannot read {_show(node.value)} as {_tag_name(node.tag)}") from None


def _describe(value: Any) -> str:
    """What was found, in YAML's terms."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({_show(value)})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if isinstance(value, yaml.SequenceNode):
        return "a list" if value.tag == _SEQ else f"a {_tag_name(value.tag)} list"
    if isinstance(value, yaml.MappingNode):
        return "a mapping" if value.tag == _MAP else f"a {_tag_name(value.tag)} mapping"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"  # !!timestamp: a date or a datetime


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _problem(exc: BaseException) -> str:
    """The first line of what a YAML error says is wrong."""
    problem = getattr(exc, "problem", None) or str(exc)
    lines = problem.strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def _one_line(text: str) -> str:
    """Keys and values quoted from the file may hold line breaks or control characters."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
