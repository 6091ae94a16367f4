"""Pure provider adapters: one module per provider, one contract (:mod:`.base`)."""

from __future__ import annotations

from caller_svc.providers.anthropic import AnthropicAdapter
from caller_svc.providers.base import (
    Adapter,
    HttpRequest,
    MalformedResponse,
    ParsedResponse,
    ProviderError,
    ProviderStreamError,
    StreamDelta,
    StreamIncomplete,
    StreamState,
    UnsupportedInput,
)
from caller_svc.providers.gemini import GeminiAdapter
from caller_svc.providers.openai import OpenAIAdapter
from caller_svc.providers.openai_compatible import OpenAICompatibleAdapter

__all__ = [
    "Adapter",
    "AnthropicAdapter",
    "GeminiAdapter",
    "HttpRequest",
    "MalformedResponse",
    "OpenAIAdapter",
    "OpenAICompatibleAdapter",
    "ParsedResponse",
    "ProviderError",
    "ProviderStreamError",
    "StreamDelta",
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
