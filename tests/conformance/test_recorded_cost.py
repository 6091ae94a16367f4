"""Exact cost, as the providers bill it: real recorded usage blocks, read by the adapters and
priced by ``uniwizard.providers.pricing``, equal the price worked out by hand here (at the
model's list prices, USD per million tokens) to the cent-millionth.

The blocks come from ``tests/data/conformance/real_exchanges.jsonl`` (the shared set) and
``extra_recordings.json`` (cache reads and writes, reasoning, tool-use prompt tokens; real
cassettes too, see the README there).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance import recorded
from uniwizard.config_types import BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.providers.base import ParsedResponse
from uniwizard.providers.pricing import price
from uniwizard.types import Usage

EXTRA = json.loads((recorded.DATA / "extra_recordings.json").read_text(encoding="utf-8"))
SHARED = {ex.id: ex for ex in recorded.load_exchanges(recorded.COPY)}


def backend(provider: str, per_million: dict[str, float]) -> BackendConfig:
    """A backend priced per million tokens (as the providers list them); cache prices only
    when given, else the provider's default share of the input price."""
    return BackendConfig(
        key="k",
        provider=provider,
        url="https://example.invalid/v1",
        model="m",
        cost_per_1k_input=per_million["in"] / 1000,
        cost_per_1k_output=per_million["out"] / 1000,
        cost_per_1k_cached_input=(per_million["read"] / 1000 if "read" in per_million else None),
        cost_per_1k_cache_write=(per_million["write"] / 1000 if "write" in per_million else None),
    )


def parsed_usage(provider: str, block: dict[str, Any]) -> Usage:
    """A usage block as the adapter reads it, inside the smallest body that carries it."""
    body: dict[str, Any]
    if provider in ("openai", "openai_compatible"):
        body = {
            "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}],
            "usage": block,
        }
    elif provider == "anthropic":
        body = {
            "type": "message",
            "content": [{"type": "text", "text": "x"}],
            "stop_reason": "end_turn",
            "usage": block,
        }
    else:
        body = {
            "candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}],
            "usageMetadata": block,
        }
    parsed = get_adapter(provider).parse_response(json.dumps(body).encode())
    assert isinstance(parsed, ParsedResponse) and parsed.usage is not None
    return parsed.usage


def shared_usage(exchange_id: str) -> tuple[str, Usage]:
    ex = SHARED[exchange_id]
    usage = recorded.recorded_usage(ex)
    assert usage is not None
    parsed = get_adapter(ex.provider).parse_response(ex.body.encode())
    assert parsed.usage == usage  # the adapter reads the block as the test does
    return ex.provider, usage


def extra_usage(name: str) -> tuple[str, Usage]:
    block = EXTRA["usage_blocks"][name]
    return block["provider"], parsed_usage(block["provider"], block["usage"])


# (where the block comes from, list prices per million, the cost worked out by hand in USD)
CASES = [
    (
        # gpt-4o: $2.50 in, $10 out; 24 in, 8 out
        ("shared", "openai-text-gpt4o-instructions"),
        {"in": 2.50, "out": 10.00},
        (24 * 2.50 + 8 * 10.00) / 1e6,  # 0.00014
    ),
    (
        # gpt-4o-2024-08-06: 2620 prompt of which 2560 cached at $1.25 (half price), 100 out
        ("extra", "openai-cached-input"),
        {"in": 2.50, "out": 10.00},
        (60 * 2.50 + 2560 * 1.25 + 100 * 10.00) / 1e6,  # 0.00435
    ),
    (
        # o3-mini: $1.10 in, $4.40 out; 577 in, 2320 out of which 1792 reasoning (billed as out)
        ("extra", "openai-reasoning"),
        {"in": 1.10, "out": 4.40, "read": 0.55},
        (577 * 1.10 + 2320 * 4.40) / 1e6,  # 0.0108427
    ),
    (
        # claude-sonnet-4-5: 655 in, 38 out, no cache
        ("shared", "anthropic-tool-sonnet45-required"),
        {"in": 3.00, "out": 15.00},
        (655 * 3.00 + 38 * 15.00) / 1e6,  # 0.002535
    ),
    (
        # claude-sonnet-4-5: 3 uncached in, 1111 cache reads at $0.30, 418 5-minute cache writes
        # at $3.75, 33 out (Anthropic's input_tokens leaves the cache out)
        ("extra", "anthropic-cache-read-and-write"),
        {"in": 3.00, "out": 15.00},
        (3 * 3.00 + 1111 * 0.30 + 418 * 3.75 + 33 * 15.00) / 1e6,  # 0.0024048
    ),
    (
        # the same block at explicitly configured cache prices
        ("extra", "anthropic-cache-read-and-write"),
        {"in": 3.00, "out": 15.00, "read": 0.30, "write": 3.75},
        (3 * 3.00 + 1111 * 0.30 + 418 * 3.75 + 33 * 15.00) / 1e6,
    ),
    (
        # gemini-2.5-flash: $0.30 in, $2.50 out; 9 in, 9 candidates + 34 thoughts out
        ("shared", "gemini-text-25-flash"),
        {"in": 0.30, "out": 2.50},
        (9 * 0.30 + (9 + 34) * 2.50) / 1e6,  # 0.0001102
    ),
    (
        # gemini-2.5-pro: $1.25 in, $10 out; 15 prompt + 429 tool-use prompt in,
        # 75 candidates + 343 thoughts out
        ("extra", "gemini-thoughts-and-tool-use-prompt"),
        {"in": 1.25, "out": 10.00},
        ((15 + 429) * 1.25 + (75 + 343) * 10.00) / 1e6,  # 0.004735
    ),
    (
        # Groq llama3-8b-8192: $0.05 in, $0.08 out; 35 in, 25 out
        ("shared", "openai_compatible-groq-text-llama3"),
        {"in": 0.05, "out": 0.08},
        (35 * 0.05 + 25 * 0.08) / 1e6,  # 0.00000375
    ),
    (
        # Mistral large: $2 in, $6 out; 72 in, 14 out
        ("shared", "openai_compatible-mistral-tool"),
        {"in": 2.00, "out": 6.00},
        (72 * 2.00 + 14 * 6.00) / 1e6,  # 0.000228
    ),
]


@pytest.mark.parametrize(
    ("where", "prices", "by_hand"), CASES, ids=[f"{c[0][1]}-{i}" for i, c in enumerate(CASES)]
)
def test_cost_of_a_real_usage_block_is_exact(
    where: tuple[str, str], prices: dict[str, float], by_hand: float
) -> None:
    kind, name = where
    provider, usage = shared_usage(name) if kind == "shared" else extra_usage(name)
    assert price(backend(provider, prices), usage) == pytest.approx(by_hand, abs=1e-8)


def test_the_breakdown_is_read_from_the_providers_own_fields() -> None:
    assert extra_usage("openai-cached-input")[1] == Usage(2620, 100, cached_input_tokens=2560)
    assert extra_usage("openai-reasoning")[1] == Usage(577, 2320, reasoning_tokens=1792)
    assert extra_usage("anthropic-cache-read-and-write")[1] == Usage(
        3 + 1111 + 418, 33, cached_input_tokens=1111, cache_write_tokens=418
    )
    assert extra_usage("gemini-thoughts-and-tool-use-prompt")[1] == Usage(
        15 + 429, 75 + 343, reasoning_tokens=343
    )


def test_every_usage_block_of_the_shared_set_is_priced_exactly() -> None:
    """For every exchange that reports usage: the adapter's usage at the replay prices equals
    the hand formula (the conformance test checks the same through the services)."""
    b = recorded.backend_for(next(iter(SHARED.values())), "call", "http://x")
    priced = 0
    for ex in SHARED.values():
        usage = recorded.recorded_usage(ex)
        if usage is None or ex.is_error:
            continue
        assert price(b, usage) == pytest.approx(recorded.hand_priced(usage), abs=1e-8), ex.id
        priced += 1
    assert priced == 16  # every answer in the set reports its usage
