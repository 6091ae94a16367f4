"""Pure pricing and token estimation.

``price`` multiplies the backend's per-1000-token prices by the usage. Cached input tokens are
priced as ordinary input (``Usage.input_tokens`` already includes them): the configuration has no
cache-discount field, and over-estimating a cost is the safer error.

``estimate_tokens`` is the fallback when a provider reports no usage (``Usage.estimated=True``):
about 4 characters per token for ASCII text (OpenAI's and Anthropic's published rule of thumb for
English), and one token per non-ASCII character (CJK characters and emoji are usually one or more
tokens each; accented Latin letters are over-counted, which errs towards the higher cost). The
result is rounded up and never 0 for non-empty text.
"""

from __future__ import annotations

import math

from uniwizard.config_types import BackendConfig
from uniwizard.types import BlindRequest, Usage

CHARS_PER_TOKEN = 4.0
# A rough, documented charge per attachment when estimating (providers bill images/audio by
# size/duration; this is only a floor so estimates are not zero).
ATTACHMENT_TOKENS = 258


def price(backend: BackendConfig, usage: Usage) -> float:
    """USD cost of ``usage`` at ``backend``'s prices."""
    return (
        usage.input_tokens * backend.cost_per_1k_input
        + usage.output_tokens * backend.cost_per_1k_output
    ) / 1000.0


def estimate_tokens(text: str) -> int:
    """A heuristic token count: ~4 ASCII chars per token, 1 per non-ASCII char; never 0."""
    if not text:
        return 0
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    other = len(text) - ascii_chars
    return max(1, math.ceil(ascii_chars / CHARS_PER_TOKEN + other))


def estimate_usage(request: BlindRequest, output_text: str, output_tool_args: str = "") -> Usage:
    """Estimated usage of one call, for when the provider reported none."""
    input_tokens = estimate_tokens(request.text())
    for tool in request.tools:
        input_tokens += estimate_tokens(tool.name + tool.description + tool.parameters_json)
    for message in request.messages:
        for call in message.tool_calls:
            input_tokens += estimate_tokens(call.name + call.arguments_json)
    input_tokens += ATTACHMENT_TOKENS * len(request.attachments())
    output_tokens = estimate_tokens(output_text) + estimate_tokens(output_tool_args)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, estimated=True)
