"""backends.yaml validation: every broken file gets one clear message naming file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from uniwizard.config import ConfigError, dump_config, load_config, parse_config
from uniwizard.providers.pricing import cache_write_price, cached_input_price

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
backends:
  local:
    provider: openai_compatible
    url: http://localhost:8081/v1
    model: hermes-4-14b
    api_key_env: null
    cost_per_1k: 0.0
    timeout: 120
  claude:
    provider: anthropic
    url: https://api.anthropic.com/v1
    model: claude-sonnet-4-20250514
    api_key_env: ANTHROPIC_API_KEY
    cost_per_1k: 0.003
    timeout: 30
"""

# (name, yaml text, expected fragment of the message, expected line or None)
BROKEN = [
    ("yaml syntax", GOOD.replace("    timeout: 30", "    timeout: [30"), "invalid YAML", None),
    (
        "unknown key",
        GOOD.replace("    timeout: 30", "    timeuot: 30"),
        "backends.claude.timeuot: unknown key",
        15,
    ),
    (
        "wrong type",
        GOOD.replace("timeout: 30", "timeout: thirty"),
        "backends.claude.timeout: must be a number, got a string ('thirty')",
        15,
    ),
    (
        "missing field",
        GOOD.replace("    model: hermes-4-14b\n", ""),
        "backends.local.model: required key is missing",
        3,
    ),
    (
        "unknown provider",
        GOOD.replace("provider: anthropic", "provider: anthropik"),
        "backends.claude.provider: unknown provider 'anthropik'",
        10,
    ),
    (
        "non-positive timeout",
        GOOD.replace("timeout: 30", "timeout: 0"),
        "backends.claude.timeout: must be a positive number, got 0",
        15,
    ),
    (
        "negative timeout",
        GOOD.replace("timeout: 120", "timeout: -5"),
        "backends.local.timeout: must be a positive number, got -5",
        8,
    ),
    (
        "inline api key",
        GOOD.replace(
            "api_key_env: ANTHROPIC_API_KEY", "api_key_env: sk-ant-api03-abcdefghijklmnop"
        ),
        "backends.claude.api_key_env: looks like an API key written inline",
        13,
    ),
    (
        "api_key field",
        GOOD.replace("    api_key_env: ANTHROPIC_API_KEY", "    api_key: sk-ant-secret"),
        "backends.claude.api_key: API keys must not be written in the config",
        13,
    ),
    (
        "bad url",
        GOOD.replace("url: https://api.anthropic.com/v1", "url: api.anthropic.com"),
        "backends.claude.url: must be an http(s) URL",
        11,
    ),
    ("no backends", "identity:\n  names: [Timmy]\n", "backends: required key is missing", 1),
    ("unknown top-level", GOOD + "extra: 1\n", "extra: unknown key", 16),
    (
        "bad modality",
        GOOD.replace("    timeout: 30", "    timeout: 30\n    modalities: [smell]"),
        "backends.claude.modalities: unknown modality 'smell'",
        16,
    ),
    (
        "bad on_detect",
        GOOD + "identity:\n  names: [Timmy]\n  on_detect: shout\n",
        "identity.on_detect: must be redact or reject",
        18,
    ),
    ("empty file", "", "the file is empty", None),
    (
        "negative cache price",
        GOOD.replace("    timeout: 30", "    timeout: 30\n    cost_per_1k_cached_input: -0.1"),
        "backends.claude.cost_per_1k_cached_input: must not be negative, got -0.1",
        16,
    ),
    (
        "cache write price not a number",
        GOOD.replace("    timeout: 30", "    timeout: 30\n    cost_per_1k_cache_write: cheap"),
        "backends.claude.cost_per_1k_cache_write: must be a number, got a string ('cheap')",
        16,
    ),
    (
        "bad key name",
        GOOD.replace("  claude:", "  Claude Sonnet:"),
        "backends.Claude Sonnet: backend keys are lowercase",
        9,
    ),
]


@pytest.mark.parametrize(("name", "text", "fragment", "line"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_gives_one_clear_message(
    name: str, text: str, fragment: str, line: int | None
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "configs/bad.yaml")
    message = str(err.value)
    assert message.startswith("configs/bad.yaml"), message
    assert fragment in message, message
    if line is not None:
        assert message.startswith(f"configs/bad.yaml:{line}: "), message
    assert "\n" not in message


def test_messages_are_all_different() -> None:
    messages = set()
    for _, text, _, _ in BROKEN:
        with pytest.raises(ConfigError) as err:
            parse_config(text, "x.yaml")
        messages.add(str(err.value))
    assert len(messages) == len(BROKEN)


def test_shipped_config_has_the_six_seed_backends() -> None:
    config = load_config(ROOT / "configs" / "backends.yaml")
    assert list(config.backends) == ["local", "claude", "kimi", "gpt", "gemini", "grok"]
    local, claude, kimi = (config.backends[k] for k in ("local", "claude", "kimi"))
    assert (local.url, local.model, local.max_context, local.timeout, local.private) == (
        "http://localhost:8081/v1",
        "hermes-4-14b",
        8192,
        120.0,
        True,
    )
    assert (
        claude.provider,
        claude.model,
        claude.cost_per_1k_input,
        claude.max_context,
        claude.timeout,
    ) == ("anthropic", "claude-sonnet-4-20250514", 0.003, 200000, 30.0)
    assert (kimi.provider, kimi.model, kimi.cost_per_1k_input) == (
        "openai_compatible",
        "kimi-2.5",
        0.001,
    )
    assert config.backends["gemini"].provider == "gemini"
    assert config.backends["gpt"].provider == "openai"
    assert config.backends["grok"].url == "https://api.x.ai/v1"
    for b in config.backends.values():
        assert b.allowed_fails > 0 and b.cooldown_time > 0
    assert config.identity is not None and "Timmy" in config.identity.names


def test_dump_round_trips(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "backends.yaml")
    path = tmp_path / "copy.yaml"
    path.write_text(dump_config(config))
    again = load_config(path)
    assert again.backends == config.backends
    assert again.probes == config.probes


def test_cache_prices_are_read_and_absent_means_the_provider_default() -> None:
    text = GOOD.replace(
        "    timeout: 30",
        "    timeout: 30\n    cost_per_1k_cached_input: 0.0003\n    cost_per_1k_cache_write: null",
    )
    config = parse_config(text, "x.yaml")
    claude, local = config.backends["claude"], config.backends["local"]
    assert (claude.cost_per_1k_cached_input, claude.cost_per_1k_cache_write) == (0.0003, None)
    assert (local.cost_per_1k_cached_input, local.cost_per_1k_cache_write) == (None, None)
    # None = the provider's share of the input price (uniwizard/providers/pricing.py)
    assert cache_write_price(claude) == pytest.approx(0.003 * 1.25)
    assert cached_input_price(claude) == 0.0003


def test_shipped_cache_prices() -> None:
    backends = load_config(ROOT / "configs" / "backends.yaml").backends
    # the seed prices: Anthropic reads at 10 % and writes at 125 %, OpenAI reads at 50 %
    assert cached_input_price(backends["claude"]) == pytest.approx(0.0003)
    assert cache_write_price(backends["claude"]) == pytest.approx(0.00375)
    assert cached_input_price(backends["gpt"]) == pytest.approx(0.00125)
    assert cached_input_price(backends["gemini"]) == pytest.approx(0.00003)


@pytest.mark.parametrize("module", ["registry_svc", "caller_svc", "router_svc"])
def test_service_refuses_bad_config_with_one_line_and_exit_2(tmp_path: Path, module: str) -> None:
    bad = tmp_path / "backends.yaml"
    bad.write_text(GOOD.replace("provider: anthropic", "provider: anthropik"))
    proc = subprocess.run(
        [sys.executable, "-m", module, "--config", str(bad), "--address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:10: backends.claude.provider: unknown provider 'anthropik'" in proc.stderr
