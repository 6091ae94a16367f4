"""Pure URL → provider-operation resolution (the dialect is decided by the path)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Op = Literal["generate", "models", "model"]


@dataclass(frozen=True, slots=True)
class Route:
    provider: str  # "openai" | "anthropic" | "gemini"
    op: Op
    model: str | None = None
    stream: bool = False


_OPENAI_GEN = Route("openai", "generate")
_ANTHROPIC_GEN = Route("anthropic", "generate")
_OPENAI_MODELS = Route("openai", "models")
_ANTHROPIC_MODELS = Route("anthropic", "models")
_GEMINI_MODELS = Route("gemini", "models")


def _is_anthropic(headers: Mapping[str, str]) -> bool:
    return "anthropic-version" in headers or "x-api-key" in headers


def resolve(method: str, tail: str, headers: Mapping[str, str]) -> Route | None:
    """Route for ``/{target}/{tail}``, or None when the path/method is not an API endpoint.

    ``/v1/models`` is shared by OpenAI and Anthropic: it is Anthropic when the request
    carries ``anthropic-version`` or ``x-api-key``, OpenAI otherwise.
    """
    tail = tail.rstrip("/")
    if method == "POST":
        if tail == "v1/chat/completions":
            return _OPENAI_GEN
        if tail == "v1/messages":
            return _ANTHROPIC_GEN
        if tail.startswith("v1beta/models/"):
            name, sep, verb = tail[len("v1beta/models/") :].rpartition(":")
            if sep and name and "/" not in name:
                if verb == "generateContent":
                    return Route("gemini", "generate", name, False)
                if verb == "streamGenerateContent":
                    return Route("gemini", "generate", name, True)
        return None
    if method in ("GET", "HEAD"):
        if tail == "v1/models":
            return _ANTHROPIC_MODELS if _is_anthropic(headers) else _OPENAI_MODELS
        if tail == "v1beta/models":
            return _GEMINI_MODELS
        if tail.startswith("v1/models/"):
            name = tail[len("v1/models/") :]
            provider = "anthropic" if _is_anthropic(headers) else "openai"
            return Route(provider, "model", name) if name else None
        if tail.startswith("v1beta/models/"):
            name = tail[len("v1beta/models/") :]
            return Route("gemini", "model", name) if name and "/" not in name else None
    return None


def guess_provider(tail: str, headers: Mapping[str, str]) -> str:
    """Which dialect's error body to use for an unknown path."""
    if tail.startswith("v1beta"):
        return "gemini"
    return "anthropic" if _is_anthropic(headers) else "openai"
