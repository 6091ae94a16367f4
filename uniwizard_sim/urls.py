"""Base URLs of the simulator, one path prefix (the *target*) per backend.

Layout (fixed contract):

- OpenAI / OpenAI-compatible: ``{root}/{target}/v1`` (``/chat/completions``, ``/models``)
- Anthropic: ``{root}/{target}/v1`` (``/messages``, ``/models``)
- Gemini: ``{root}/{target}/v1beta`` (``/models/{m}:generateContent``,
  ``/models/{m}:streamGenerateContent?alt=sse``, ``/models``)
"""

from __future__ import annotations

import re

PROVIDERS = ("openai", "openai_compatible", "anthropic", "gemini")
_TARGET_RE = re.compile(r"[A-Za-z0-9_-]+")


def base_url(sim_root: str, target: str, provider: str) -> str:
    """The API base (with its version segment) a backend should use.

    >>> base_url("http://127.0.0.1:8090", "gemini", "gemini")
    'http://127.0.0.1:8090/gemini/v1beta'
    """
    if not _TARGET_RE.fullmatch(target):
        raise ValueError(f"invalid simulator target {target!r}: must match [A-Za-z0-9_-]+")
    root = sim_root.rstrip("/")
    if provider in ("openai", "openai_compatible", "anthropic"):
        return f"{root}/{target}/v1"
    if provider == "gemini":
        return f"{root}/{target}/v1beta"
    raise ValueError(f"unknown provider {provider!r}: expected one of {', '.join(PROVIDERS)}")


def sdk_base_url(sim_root: str, target: str, provider: str) -> str:
    """The ``base_url`` to give the provider's official Python SDK.

    - ``openai.OpenAI(base_url=...)``: the API base, ``{root}/{target}/v1``.
    - ``anthropic.Anthropic(base_url=...)``: ``{root}/{target}`` (the SDK appends
      ``/v1/messages`` itself).
    - ``google.genai.Client(http_options=HttpOptions(base_url=..., api_version="v1beta"))``:
      ``{root}/{target}/`` (the SDK appends ``v1beta/models/...``).
    """
    root = sim_root.rstrip("/")
    base_url(root, target, provider)  # validates
    if provider in ("openai", "openai_compatible"):
        return f"{root}/{target}/v1"
    if provider == "anthropic":
        return f"{root}/{target}"
    return f"{root}/{target}/"
