"""uniwizard.yamlcheck: document problems and typed getters, each one ConfigError naming the
file, the line, the key path and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniwizard import yamlcheck as yc
from uniwizard.config import ConfigError

F = "f.yaml"


def root(text: str) -> yc.Entry:
    entry = yc.compose(text, F)
    assert entry is not None
    return entry


def error(fn, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert message.isprintable() and message.startswith(F)
    return message


def test_config_error_is_the_one_error_type() -> None:
    assert yc.ConfigError is ConfigError
    e = ConfigError(F, "a.b", "bad\nthing", 3)
    assert (e.path, e.key_path, e.message, e.line) == (F, "a.b", "bad\nthing", 3)
    assert str(e) == "f.yaml:3: a.b: bad\\nthing"
    assert str(ConfigError(F, "", "the file is empty")) == "f.yaml: the file is empty"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n", "null\n"])
def test_nothing_in_the_document(text: str) -> None:
    assert yc.compose(text, F) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1\n", "f.yaml:2: invalid YAML: expected ',' or ']'"),
        ("a: " + "[" * 1500 + "]" * 1500, "f.yaml: invalid YAML: nested too deeply"),
        ("a:\n  b: !!foo 1\n", "f.yaml:2: a.b: unknown tag !!foo"),
        ("a:\n  - !bar x\n", "f.yaml:2: a[0]: unknown tag !bar"),
        ("a: 1\nb:\n  c: 2\n  c: 3\n", "f.yaml:4: b.c: duplicate key"),
        ("a:\n  ? [x]\n  : 1\n", "f.yaml:2: a: keys must be plain strings"),
        ("!!python/object:os.system {}\n", "f.yaml:1: unknown tag !!python/object:os.system"),
    ],
)
def test_document_problems(text: str, expected: str) -> None:
    assert error(yc.compose, text, F).startswith(expected)


def test_aliases_are_checked_once_and_recursive_ones_end() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    assert root(laughs).line == 1
    loop = root("a: &x [*x]\n")
    item = yc.sequence(yc.sequence(yc.mapping(loop)["a"])[0])[0]
    assert item.key_path == "a[0][0]"


def test_mapping_entries_carry_key_path_and_key_line() -> None:
    top = yc.mapping(root("a: 1\nb:\n  c: [x, y]\n"), ("a", "b"), required=("a",))
    c = yc.mapping(top["b"])["c"]
    assert (top["b"].key_path, top["b"].line, c.key_path, c.line) == ("b", 2, "b.c", 3)
    assert [(i.key_path, i.line) for i in yc.sequence(c)] == [("b.c[0]", 3), ("b.c[1]", 3)]


def test_unknown_and_missing_keys() -> None:
    r = root("name: x\nprefers: [a]\n")
    assert error(yc.mapping, r, ("name", "prefer")) == (
        "f.yaml:2: prefers: unknown key 'prefers' (allowed: name, prefer)"
    )
    nested = yc.mapping(root("a:\n  b:\n    x: 1\n"))["a"]
    b = yc.mapping(nested)["b"]
    assert error(yc.mapping, b, ("x", "y"), required=("y",)) == (
        "f.yaml:3: a.b.y: required key is missing"  # on the mapping's first line
    )


def test_merge_keys() -> None:
    r = yc.mapping(
        root("base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nm:\n  <<: [*b, *o]\n  x: 9\n")
    )
    m = yc.mapping(r["m"], ("x", "y", "z"))
    assert {k: yc.integer(v) for k, v in m.items()} == {"x": 9, "y": 2, "z": 4}
    assert (m["y"].key_path, m["y"].line, m["x"].line) == ("m.y", 1, 5)
    bad = yc.mapping(root("m:\n  <<: 1\n"))["m"]
    assert error(yc.mapping, bad) == "f.yaml:2: m: '<<' merges a mapping or a list of mappings"


def test_merge_chains_cost_linear_work() -> None:
    text = "a0: &a0 {x: 1}\n" + "".join(
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}], k{i}: {i}}}\n" for i in range(1, 30)
    )
    last = yc.mapping(yc.mapping(root(text))["a29"])
    assert len(last) == 30  # x and k1..k29


@pytest.mark.parametrize(
    ("text", "read", "expected"),
    [
        ("v: ''", yc.string, "v: must be a non-empty string, got a string ('')"),
        ("v:", yc.string, "v: must be a non-empty string, got nothing"),
        ("v: [a]", yc.string, "v: must be a non-empty string, got a list"),
        ("v: 1.5", yc.integer, "v: must be a whole number, got a number (1.5)"),
        ("v: true", yc.integer, "v: must be a whole number, got a boolean (true)"),
        ("v: lots", yc.integer, "v: must be a whole number, got a string ('lots')"),
        ("v: no", yc.number, "v: must be a number, got a boolean (false)"),
        ("v: {a: 1}", yc.number, "v: must be a number, got a mapping"),
        ("v: .inf", yc.number, "v: must be a finite number, got inf"),
        ("v: .nan", yc.number, "v: must be a finite number, got nan"),
        ("v: 1" + "0" * 400, yc.number, "v: must be a finite number, got 1000000000000"),
        ("v: yes please", yc.boolean, "v: must be true or false, got a string ('yes please')"),
        ("v: !!binary aGk=", yc.boolean, "v: must be true or false, got binary data"),
        ("v: 2020-01-01", yc.boolean, "v: must be true or false, got a date"),
        ("v: [a, 1]", yc.strings, "v[1]: must be a string, got a number (1)"),
        ("v: a", yc.strings, "v: must be a list of strings, got a string ('a')"),
        ("v: {a: 1}", yc.sequence, "v: must be a list, got a mapping"),
        ("v: !!set {a}", yc.mapping, "v: must be a mapping, got a !!set mapping"),
        ("v: !!bool maybe", yc.boolean, "v: cannot read 'maybe' as !!bool"),
        ("v: !!timestamp x", yc.string, "v: cannot read 'x' as !!timestamp"),
        ("v: !!int abc", yc.integer, "v: cannot read 'abc' as !!int"),
    ],
)
def test_getter_messages(text: str, read, expected: str) -> None:  # type: ignore[no-untyped-def]
    entry = yc.mapping(root(text))["v"]
    assert error(read, entry).startswith(f"f.yaml:1: {expected}")


def test_getter_bounds_and_values() -> None:
    m = yc.mapping(root("a: 0\nb: -1\nc: 3\nd: 2.5\ne: [x, '']\nf: ~\n"))
    assert error(yc.integer, m["a"], minimum=1) == "f.yaml:1: a: must be at least 1, got 0"
    assert (
        error(yc.number, m["a"], positive=True) == "f.yaml:1: a: must be a positive number, got 0"
    )
    assert (
        error(yc.number, m["b"], non_negative=True) == "f.yaml:2: b: must not be negative, got -1"
    )
    assert yc.integer(m["c"], minimum=3) == 3 and yc.number(m["c"], positive=True) == 3.0
    assert isinstance(yc.number(m["c"]), float) and yc.number(m["d"]) == 2.5
    assert yc.strings(m["e"]) == ("x", "")
    assert yc.is_null(m["f"]) and not yc.is_null(m["a"])
    assert not yc.is_mapping(m["e"])


def test_read_text(tmp_path: Path) -> None:
    good = tmp_path / "ok.yaml"
    good.write_text("a: 1\n", encoding="utf-8")
    assert yc.read_text(str(good)) == "a: 1\n"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: \xff\n")
    for path, reason in [
        (tmp_path / "nope.yaml", "file not found"),
        (tmp_path, "it is a directory"),
        (latin, "not UTF-8 text"),
    ]:
        with pytest.raises(ConfigError) as err:
            yc.read_text(str(path))
        assert str(err.value) == f"{path}: cannot read: {reason}"
