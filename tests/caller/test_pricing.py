"""Pricing and the token estimate."""

from __future__ import annotations

import pytest

from caller_svc.pricing import estimate_tokens, estimate_usage, price
from uniwizard.config_types import BackendConfig
from uniwizard.types import Attachment, BlindRequest, Message, Role, Usage

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
    # cached input is priced as input: 2000 * 0.003/1000 + 500 * 0.015/1000
    assert price(CLAUDE, usage) == pytest.approx(0.006 + 0.0075)
    assert price(CLAUDE, Usage()) == 0.0
    free = BackendConfig(key="local", provider="openai_compatible", url="u", model="m")
    assert price(free, usage) == 0.0


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("The quick brown fox jumps over the lazy dog.") == 11
    assert estimate_tokens("日本語") == 3


def test_estimate_usage_is_marked_estimated() -> None:
    request = BlindRequest(
        messages=(Message(Role.USER, "x" * 40, attachments=(Attachment("a", "image/png", b"1"),)),),
        system_prompt="y" * 8,
    )
    usage = estimate_usage(request, "z" * 12)
    assert usage.estimated
    assert usage.output_tokens == 3
    assert usage.input_tokens == estimate_tokens("y" * 8 + "\n" + "x" * 40) + 258
