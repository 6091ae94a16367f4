"""The one price formula: USD = each kind of token x the backend's price for that kind.

Providers bill four kinds of token, and :class:`~uniwizard.types.Usage` counts them the way the
OpenTelemetry GenAI conventions do (``input_tokens`` holds the cache reads and writes,
``output_tokens`` holds the reasoning tokens)::

    USD = ( (input - cache reads - cache writes) x cost_per_1k_input
          +  cache reads                          x cost_per_1k_cached_input
          +  cache writes                         x cost_per_1k_cache_write
          +  output (reasoning included)          x cost_per_1k_output ) / 1000

Reasoning/thinking tokens are priced as output: OpenAI, Anthropic and Gemini all bill them at the
output price. A backend that names no cache prices gets its provider's default share of its
input price (:data:`DEFAULT_CACHE_SHARES`), the providers' list prices as of 2026:

=====================  ===========  ============  ==================================================
provider               cache read   cache write   source
=====================  ===========  ============  ==================================================
``openai``             0.5 x input  1 x input     gpt-4o and o-series bill cached input at half
                                                  price (gpt-4.1: 0.25, gpt-5: 0.1 -- set
                                                  ``cost_per_1k_cached_input``); writes cost nothing
                                                  extra
``anthropic``          0.1 x input  1.25 x input  cache hits at 10 %, 5-minute cache writes at 125 %
                                                  (1-hour writes, 200 %, need an explicit price)
``gemini``             0.1 x input  1 x input     2.5 and 3 models bill cached tokens at 10 %;
                                                  ``generateContent`` reports no cache writes
``openai_compatible``  1 x input    1 x input     no common rule (Groq, Moonshot, xAI each have
                                                  their own): no discount unless configured
=====================  ===========  ============  ==================================================

The router prices its estimates (the cost ceiling) and the caller prices what providers report
with this same function.
"""

from __future__ import annotations

from uniwizard.config_types import BackendConfig
from uniwizard.types import Usage

# provider -> (cache read share, cache write share) of cost_per_1k_input, when not configured.
DEFAULT_CACHE_SHARES: dict[str, tuple[float, float]] = {
    "openai": (0.5, 1.0),
    "anthropic": (0.1, 1.25),
    "gemini": (0.1, 1.0),
    "openai_compatible": (1.0, 1.0),
}


def cached_input_price(backend: BackendConfig) -> float:
    """USD per 1000 input tokens read from the cache (configured, else the provider default)."""
    if backend.cost_per_1k_cached_input is not None:
        return backend.cost_per_1k_cached_input
    share = DEFAULT_CACHE_SHARES.get(backend.provider, (1.0, 1.0))[0]
    return backend.cost_per_1k_input * share


def cache_write_price(backend: BackendConfig) -> float:
    """USD per 1000 input tokens written to the cache (configured, else the provider default)."""
    if backend.cost_per_1k_cache_write is not None:
        return backend.cost_per_1k_cache_write
    share = DEFAULT_CACHE_SHARES.get(backend.provider, (1.0, 1.0))[1]
    return backend.cost_per_1k_input * share


def price(backend: BackendConfig, usage: Usage) -> float:
    """USD cost of ``usage`` at ``backend``'s prices."""
    cached = max(0, min(usage.cached_input_tokens, usage.input_tokens))
    written = max(0, min(usage.cache_write_tokens, usage.input_tokens - cached))
    plain = usage.input_tokens - cached - written
    return (
        plain * backend.cost_per_1k_input
        + cached * cached_input_price(backend)
        + written * cache_write_price(backend)
        + usage.output_tokens * backend.cost_per_1k_output
    ) / 1000.0
