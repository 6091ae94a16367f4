"""Fuzz the backends.yaml loader: random documents with the known keys and random-typed values,
and mutations of configs/backends.yaml (lines deleted, re-indented, random characters).

Contract: ``parse_config`` returns a ``Config`` or raises ``ConfigError``, whose message is a
single line starting with the file's path. A configuration that loads survives a round trip
through ``dump_config``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from uniwizard.config import BACKEND_FIELDS, ConfigError, dump_config, parse_config
from uniwizard.config_types import Config

# The profile registered in conftest.py ("ci" by default, HYPOTHESIS_PROFILE=deep to hunt),
# applied to these tests only.
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "configs" / "backends.yaml").read_text(encoding="utf-8")
LINES = TEXT.splitlines(keepends=True)
PATH = "configs/backends.yaml"

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "openai",
            "anthropic",
            "gemini",
            "openai_compatible",
            "http://h/v1",
            "https://x",
            "OPENAI_API_KEY",
            "sk-abc",
            "text",
            "image",
            "redact",
            "reject",
        ]
    ),
)
VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
GOOD = {
    "provider": st.sampled_from(["openai", "anthropic", "gemini", "openai_compatible"]),
    "url": st.sampled_from(["http://localhost:1/v1", "https://api.example.com/v1/"]),
    "model": st.sampled_from(["m", "gpt-4o"]),
    "api_key_env": st.sampled_from([None, "X_KEY"]),
    "max_context": st.integers(1, 10**6),
    "timeout": st.floats(0.001, 1e6),
    "modalities": st.lists(st.sampled_from(["text", "image", "audio", "video"]), max_size=4),
    "private": st.booleans(),
    "cost_per_1k": st.floats(0, 10),
}
BACKEND_KEYS = st.sampled_from([*BACKEND_FIELDS, "api_key", "bogus"])


@st.composite
def backend(draw: st.DrawFn) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in ("provider", "url", "model"):
        if draw(st.integers(0, 9)):  # usually present
            out[key] = draw(GOOD[key]) if draw(st.integers(0, 3)) else draw(VALUES)
    for key in draw(st.lists(BACKEND_KEYS, max_size=5, unique=True)):
        out[key] = draw(GOOD[key]) if key in GOOD and draw(st.booleans()) else draw(VALUES)
    return out


DOCUMENTS = st.fixed_dictionaries(
    {
        "backends": st.one_of(
            st.dictionaries(
                st.sampled_from(["local", "gpt", "Bad Key", "x"]), backend(), max_size=3
            ),
            VALUES,
        )
    },
    optional={
        "identity": st.fixed_dictionaries(
            {},
            optional={
                "names": VALUES,
                "on_detect": VALUES,
                "placeholder": VALUES,
                "soul_files": VALUES,
            },
        )
        | VALUES,
        "probes": st.fixed_dictionaries(
            {}, optional={"interval": VALUES, "jitter": VALUES, "timeout": VALUES}
        )
        | VALUES,
        "extra": VALUES,
    },
).map(lambda d: yaml.safe_dump(d, allow_unicode=True))

_BITS = [
    "",
    " ",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "*b",
    "!!int ",
    "!!foo ",
    "!!binary ",
    "!!timestamp ",
    "'",
    '"',
    "\t",
    "#",
    "|",
    ">",
    "? ",
    ".nan",
    ".inf",
    "-1",
    "0",
    "~",
    "\x85",
    "\ufeff",
    "<<: ",
    "\x00",
    "\r",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 5))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "indent", "dedent", "dup", "insert", "replace"]))
        if op == "delete":
            del lines[i]
        elif op == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "    ", "\t"])) + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip(" ")
        elif op == "dup":
            lines.insert(i, lines[i])
        else:
            line = lines[i]
            j = draw(st.integers(0, len(line)))
            bit = draw(st.one_of(st.sampled_from(_BITS), st.text(max_size=4)))
            k = j if op == "insert" else min(len(line), j + draw(st.integers(0, 10)))
            lines[i] = line[:j] + bit + line[k:]
    return "".join(lines)


@FUZZ
@given(text=st.one_of(mutated(), DOCUMENTS, st.text(max_size=80)))
@example(text=TEXT.replace("timeout: 30\n", "timeout: !!foo 30\n", 1))
@example(text=TEXT.replace("timeout: 30\n", "timeout: !!int abc\n", 1))
@example(text=TEXT.replace("timeout: 30\n", "timeout: !!timestamp 2020-13-45\n", 1))
@example(text=TEXT.replace("timeout: 30\n", "timeout: !!timestamp abc\n", 1))
@example(text=TEXT.replace("timeout: 30\n", "timeout: !!bool maybe\n", 1))
@example(text=TEXT.replace("timeout: 30\n", f"timeout: {10**400}\n", 1))
@example(text=TEXT.replace("timeout: 30\n", "timeout: .nan\n", 1))
@example(text=TEXT.replace("timeout: 30\n", "timeout: .inf\n", 1))
@example(text=TEXT.replace("timeout: 30\n", '"time\\nout": 30\n', 1))
@example(
    text="backends:\n  a:\n    provider: openai\n    url: http://a/v1\n    model: m\n"
    "    strengths: &l [*l]\n"
)
@example(text="backends: " + "[" * 1500 + "]" * 1500)
def test_config_loader_raises_only_config_error(text: str) -> None:
    try:
        config = parse_config(text, PATH)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(PATH + ":") or message.startswith(PATH + " ")
        assert message.isprintable()  # one line, no control characters
        assert exc.path == PATH and exc.message
        return
    assert isinstance(config, Config) and config.backends
    for b in config.backends.values():
        for name in ("timeout", "cost_per_1k_input", "cost_per_1k_output", "cooldown_time"):
            value = getattr(b, name)
            assert value == value and value != float("inf")  # finite
    again = parse_config(dump_config(config), PATH)
    assert again.backends == config.backends
    assert again.probes == config.probes
