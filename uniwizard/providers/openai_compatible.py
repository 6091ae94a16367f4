"""OpenAI-compatible servers (llama.cpp, Moonshot/Kimi, xAI/Grok): the OpenAI adapter with small
overrides, Portkey's ``open-ai-base`` pattern.

Differences from :class:`~uniwizard.providers.openai.OpenAIAdapter`:

- ``max_tokens`` instead of ``max_completion_tokens`` (what these servers understand);
- no ``authorization`` header when there is no key (llama.cpp without ``--api-key``) — the base
  adapter already omits it for ``None``;
- error bodies in llama.cpp's shape ``{"error": {"code": 400, "message", "type":
  "exceed_context_size_error"}}`` (``code`` is the HTTP status, ``type`` the meaning) and the
  ``{"error": "..."}`` / ``{"detail": "..."}`` shapes are understood by the shared error parser;
- usage may arrive on the last content chunk (llama.cpp) or inside the choice (Moonshot); the
  shared stream state reads all three places.
"""

from __future__ import annotations

from typing import ClassVar

from uniwizard.providers.openai import OpenAIAdapter


class OpenAICompatibleAdapter(OpenAIAdapter):
    name: str = "openai_compatible"
    max_tokens_field: ClassVar[str] = "max_tokens"
