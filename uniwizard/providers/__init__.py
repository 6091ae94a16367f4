"""The provider layer: pure, I/O-free translation between blind requests and each provider's
wire format, used by the caller (calls) and the registry (probes) alike.

One module per provider (:mod:`.openai`, :mod:`.openai_compatible`, :mod:`.anthropic`,
:mod:`.gemini`) implements one contract (:mod:`.base`): build the request, parse a body, parse a
stream event, classify an error (:mod:`.outcomes`), read usage. Beside them: the SSE decoder
(:mod:`.sse`), the reply and stream readers (:mod:`.stream`), the one token estimator
(:mod:`.tokens`) and the one price formula (:mod:`.pricing`). Nothing here opens a socket;
:mod:`uniwizard.transport` moves the bytes.
"""

from __future__ import annotations

from uniwizard.providers.anthropic import AnthropicAdapter
from uniwizard.providers.base import (
    Adapter,
    HttpRequest,
    MalformedResponse,
    ParsedResponse,
    ProviderStreamError,
    StreamIncomplete,
    StreamState,
    UnsupportedInput,
)
from uniwizard.providers.gemini import GeminiAdapter
from uniwizard.providers.openai import OpenAIAdapter
from uniwizard.providers.openai_compatible import OpenAICompatibleAdapter

__all__ = [
    "Adapter",
    "AnthropicAdapter",
    "GeminiAdapter",
    "HttpRequest",
    "MalformedResponse",
    "OpenAIAdapter",
    "OpenAICompatibleAdapter",
    "ParsedResponse",
    "ProviderStreamError",
    "StreamIncomplete",
    "StreamState",
    "UnsupportedInput",
    "get_adapter",
]


def get_adapter(provider: str) -> Adapter:
    """The adapter for a provider name from the configuration (``BackendConfig.provider``).

    Adapters are stateless, so a fresh one per call is as good as a shared one (no globals).
    """
    if provider == "openai":
        return OpenAIAdapter()
    if provider == "openai_compatible":
        return OpenAICompatibleAdapter()
    if provider == "anthropic":
        return AnthropicAdapter()
    if provider == "gemini":
        return GeminiAdapter()
    raise ValueError(f"unknown provider {provider!r}")
