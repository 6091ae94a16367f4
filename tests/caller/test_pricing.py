"""Pricing, and the billed token estimate (the same estimator the router routes with)."""

from __future__ import annotations

import pytest

from uniwizard.config_types import BackendConfig
from uniwizard.providers.pricing import price
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
    # cached input is priced as input: 2000 * 0.003/1000 + 500 * 0.015/1000
    assert price(CLAUDE, usage) == pytest.approx(0.006 + 0.0075)
    assert price(CLAUDE, Usage()) == 0.0
    free = BackendConfig(key="local", provider="openai_compatible", url="u", model="m")
    assert price(free, usage) == 0.0


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
