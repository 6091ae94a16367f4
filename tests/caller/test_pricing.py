"""Pricing, and the billed token estimate (the same estimator the router routes with)."""

from __future__ import annotations

import pytest

from uniwizard.config_types import BackendConfig
from uniwizard.providers.pricing import (
    DEFAULT_CACHE_SHARES,
    cache_write_price,
    cached_input_price,
    price,
)
from uniwizard.providers.tokens import (
    estimate_request_tokens,
    estimate_task_tokens,
    estimate_tokens,
    estimate_usage,
)
from uniwizard.types import Attachment, BlindRequest, Message, Role, Task, ToolCall, Usage

CLAUDE = BackendConfig(
    key="claude",
    provider="anthropic",
    url="https://api.anthropic.com/v1",
    model="claude-x",
    cost_per_1k_input=0.003,
    cost_per_1k_output=0.015,
)


def test_price() -> None:
    usage = Usage(input_tokens=2000, output_tokens=500, cached_input_tokens=1500)
    # 500 plain input at 0.003, 1500 cache reads at Anthropic's default 0.1 x 0.003, 500 output
    assert price(CLAUDE, usage) == pytest.approx(
        (500 * 0.003 + 1500 * 0.0003 + 500 * 0.015) / 1000, abs=1e-12
    )
    assert price(CLAUDE, Usage()) == 0.0
    free = BackendConfig(key="local", provider="openai_compatible", url="u", model="m")
    assert price(free, usage) == 0.0


def test_price_cache_writes_and_reasoning() -> None:
    # 100 plain, 300 read, 600 written (Anthropic default 1.25 x input); reasoning is output
    usage = Usage(
        input_tokens=1000,
        output_tokens=400,
        cached_input_tokens=300,
        cache_write_tokens=600,
        reasoning_tokens=350,
    )
    expected = (100 * 0.003 + 300 * 0.0003 + 600 * 0.00375 + 400 * 0.015) / 1000
    assert price(CLAUDE, usage) == pytest.approx(expected, abs=1e-12)
    # counts that do not add up (more cached than input) never price below zero input
    odd = Usage(input_tokens=10, cached_input_tokens=50, cache_write_tokens=50)
    assert price(CLAUDE, odd) == pytest.approx(10 * 0.0003 / 1000, abs=1e-15)


@pytest.mark.parametrize(
    ("provider", "read", "write"),
    [
        ("openai", 0.5, 1.0),
        ("anthropic", 0.1, 1.25),
        ("gemini", 0.1, 1.0),
        ("openai_compatible", 1.0, 1.0),
    ],
)
def test_default_cache_prices_per_provider(provider: str, read: float, write: float) -> None:
    b = BackendConfig(key="k", provider=provider, url="u", model="m", cost_per_1k_input=0.002)
    assert cached_input_price(b) == pytest.approx(0.002 * read)
    assert cache_write_price(b) == pytest.approx(0.002 * write)
    assert DEFAULT_CACHE_SHARES[provider] == (read, write)
    # a configured price wins over the default, also 0
    b = BackendConfig(
        key="k",
        provider=provider,
        url="u",
        model="m",
        cost_per_1k_input=0.002,
        cost_per_1k_cached_input=0.0,
        cost_per_1k_cache_write=0.004,
    )
    assert (cached_input_price(b), cache_write_price(b)) == (0.0, 0.004)


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    # the calibrated estimator (uniwizard/providers/tokens.py): 9 words, 44 chars, 1 symbol
    assert estimate_tokens("The quick brown fox jumps over the lazy dog.") == 9
    assert estimate_tokens("日本語") == 4  # CJK: 3 extra UTF-8 bytes per char weigh in


def test_estimate_usage_is_marked_estimated() -> None:
    request = BlindRequest(
        messages=(Message(Role.USER, "x" * 40, attachments=(Attachment("a", "image/png", b"1"),)),),
        system_prompt="y" * 8,
    )
    usage = estimate_usage(request, "z" * 12)
    assert usage.estimated
    assert usage.output_tokens == estimate_tokens("z" * 12)
    # system prompt + one message (its overhead, its text and the image's fixed estimate)
    assert usage.input_tokens == estimate_tokens("y" * 8) + 4 + estimate_tokens("x" * 40) + 1000


def test_billed_estimate_equals_routed_estimate_also_for_cjk() -> None:
    """What the router estimated for a request is what an attempt with no reported usage is
    billed for: one estimator, so the two never disagree (chars/4 was 65-75% under on CJK)."""
    cjk = "请解释一下分布式系统中的一致性与可用性之间的权衡。"
    for text in ("Explain the CAP theorem.", cjk * 20):
        request = BlindRequest(messages=(Message(Role.USER, text),), system_prompt="Be brief.")
        routed = estimate_task_tokens(Task(request=request))
        billed = estimate_usage(request, "").input_tokens
        assert billed == routed == estimate_request_tokens(request)
    assert estimate_tokens(cjk) > len(cjk) / 4


def test_estimate_usage_counts_tool_calls_out() -> None:
    request = BlindRequest(messages=(Message(Role.USER, "weather?"),))
    call = ToolCall("c1", "get_weather", '{"city": "Lima"}')
    plain = estimate_usage(request, "")
    with_call = estimate_usage(request, "", (call,))
    assert with_call.output_tokens == plain.output_tokens + estimate_tokens("get_weather") + (
        estimate_tokens('{"city": "Lima"}')
    )
