from __future__ import annotations

import dataclasses
import textwrap

import pytest

from router_svc.policy import Policy, load_policy, parse_policy
from tests.router import helpers as h
from uniwizard.config import ConfigError, load_config

KNOWN = ("local", "claude", "kimi", "gpt", "gemini", "grok")

GOOD = textwrap.dedent(
    """\
    version: 1
    default: knowledge
    categories:
      - name: multimodal
        description: attachments
        when:
          media_types: [image/]
        prefer: [gemini, gpt]
      - name: simple
        when:
          keywords: [read, {phrase: rename, weight: 2}]
          patterns:
            - '\\bls\\b'
        prefer: [local, grok]
      - name: knowledge
        when:
          keywords: [explain]
        prefer: [gpt, claude]
    """
)


def parse(text: str) -> Policy:
    return parse_policy(text, "configs/routing.yaml", KNOWN)


def test_good_policy_parses() -> None:
    p = parse(GOOD)
    assert p.names == ("multimodal", "simple", "knowledge")
    assert p.default == "knowledge"
    assert p.rule("simple").prefer == ("local", "grok")
    assert p.rule("simple").when.keywords[1].weight == 2.0
    assert p.rule("multimodal").when.media_types == ("image/",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.default = "simple"  # type: ignore[misc]


def test_shipped_policy_matches_shipped_backends() -> None:
    config = load_config(h.ROOT / "configs" / "backends.yaml")
    p = load_policy(h.POLICY_PATH, config.backends)
    assert p.names == (
        "multimodal",
        "private",
        "long_context",
        "simple",
        "reasoning",
        "bulk_codegen",
        "knowledge",
        "quick",
    )
    primaries = {c.name: c.prefer[0] for c in p.categories}
    assert primaries == {
        "multimodal": "gemini",
        "private": "local",
        "long_context": "kimi",
        "simple": "local",
        "reasoning": "claude",
        "bulk_codegen": "kimi",
        "knowledge": "gpt",
        "quick": "grok",
    }
    assert p.rule("private").private_only
    assert p.rule("private").prefer == ("local",)
    for c in p.categories:
        if c.name != "private":
            assert sorted(c.prefer) == sorted(KNOWN), c.name  # every sensible fallback listed


BROKEN = [
    pytest.param(
        GOOD.replace("prefer: [local, grok]", "prefer: [local, claud]"),
        "configs/routing.yaml:14: categories[1].prefer[1]: unknown backend 'claud' "
        "(known: claude, gemini, gpt, grok, kimi, local)",
        id="unknown-backend",
    ),
    pytest.param(
        GOOD.replace("prefer: [gpt, claude]", "prefers: [gpt, claude]"),
        "categories[2].prefers: unknown key 'prefers' (allowed: name, description, when, "
        "prefer, private_only, adapt)",
        id="unknown-key",
    ),
    pytest.param(
        GOOD.replace("[image/]", "[image/]\n      min_input_tokens: lots"),
        "categories[0].when.min_input_tokens: must be a whole number, got a string ('lots')",
        id="wrong-type",
    ),
    pytest.param(
        GOOD.replace("min_input_tokens", "x").replace("- name: knowledge", "- name: simple"),
        "categories[2].name: duplicate category 'simple'",
        id="duplicate-category",
    ),
    pytest.param(
        GOOD.replace("default: knowledge", "default: fancy"),
        "default: 'fancy' is not a category (categories: multimodal, simple, knowledge)",
        id="default-not-a-category",
    ),
    pytest.param(
        GOOD.replace("'\\bls\\b'", "'(unclosed'"),
        "categories[1].when.patterns[0]: bad regex '(unclosed': missing ), unterminated "
        "subpattern at position 0",
        id="bad-regex",
    ),
    pytest.param(
        GOOD.replace("default: knowledge", "default: knowledge\ndefault: simple"),
        "configs/routing.yaml:3: default: duplicate key",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        GOOD.replace("keywords: [explain]", "keywords: [explain, Explain]"),
        "categories[2].when.keywords[1]: keyword 'explain' listed twice",
        id="duplicate-keyword",
    ),
    pytest.param(
        GOOD.replace("prefer: [gemini, gpt]", "prefer: [gemini, gemini]"),
        "categories[0].prefer[1]: backend 'gemini' listed twice",
        id="duplicate-backend",
    ),
    pytest.param(
        GOOD.replace("prefer: [gemini, gpt]", "prefer: []"),
        "categories[0].prefer: must name at least one backend",
        id="empty-prefer",
    ),
    pytest.param(
        GOOD.replace("weight: 2}", "weight: -1}"),
        "categories[1].when.keywords[1].weight: must be a positive number, got -1",
        id="negative-weight",
    ),
    pytest.param(
        GOOD.replace("media_types: [image/]", "min_input_tokens: true"),
        "categories[0].when.min_input_tokens: must be a whole number, got a boolean (true)",
        id="bool-is-not-int",
    ),
    pytest.param(
        GOOD.replace("media_types: [image/]", "media_types: []"),
        "categories[0].when: category 'multimodal' has no evidence and is not the default",
        id="no-evidence",
    ),
    pytest.param(
        GOOD.replace("'\\bls\\b'", "'x*'"),
        "categories[1].when.patterns[0]: regex 'x*' matches the empty string",
        id="empty-match-regex",
    ),
    pytest.param(
        GOOD.replace("keywords: [explain]", "keywords: ['ex*plain']"),
        "categories[2].when.keywords[0]: 'ex*plain': '*' may only end the last word",
        id="misplaced-star",
    ),
    pytest.param("", "configs/routing.yaml: the file is empty", id="empty-file"),
    pytest.param(
        GOOD.replace("prefer: [gemini, gpt]", "prefer: [gemini, gpt"),
        "invalid YAML",
        id="yaml-syntax",
    ),
    pytest.param(
        GOOD.replace("version: 1", "version: 2"),
        "version: unsupported version 2 (supported: 1)",
        id="version",
    ),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_broken_policy_names_file_key_and_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text)
    line = str(err.value)
    print(line)
    assert "\n" not in line
    assert line.startswith("configs/routing.yaml")
    assert message in line


def test_error_carries_parts_and_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse(GOOD.replace("prefer: [local, grok]", "prefer: [local, claud]"))
    e = err.value
    assert (e.path, e.key_path, e.line) == ("configs/routing.yaml", "categories[1].prefer[1]", 14)
    assert "unknown backend 'claud'" in e.message


def test_known_backends_none_skips_backend_check() -> None:
    p = parse_policy(GOOD.replace("prefer: [local, grok]", "prefer: [local, zeta]"))
    assert p.rule("simple").prefer == ("local", "zeta")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_policy(tmp_path / "nope.yaml", KNOWN)


def test_anchors_and_merge_keys_share_settings() -> None:
    text = GOOD.replace(
        "  - name: simple\n",
        "  - name: simple\n    <<: &shared {private_only: false, description: shared}\n",
    ).replace("  - name: knowledge\n", "  - name: knowledge\n    <<: *shared\n")
    p = parse(text)
    assert p.rule("simple").description == "shared" == p.rule("knowledge").description
    bad = text.replace("<<: *shared", "<<: 3")
    with pytest.raises(ConfigError) as err:
        parse(bad)
    assert str(err.value) == (
        "configs/routing.yaml:17: categories[2]: '<<' merges a mapping or a list of mappings"
    )
