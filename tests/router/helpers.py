"""Shared helpers for the router's pure-logic tests: backends, tasks, the labelled corpus."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_svc.policy import Policy, load_policy
from uniwizard.config_types import BackendConfig
from uniwizard.providers.tokens import estimate_tokens
from uniwizard.types import (
    Attachment,
    BackendHealth,
    BlindRequest,
    HealthState,
    Message,
    Role,
    Task,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = ROOT / "configs" / "routing.yaml"
CORPUS_PATH = ROOT / "tests" / "data" / "tasks.jsonl"


def _backend(key: str, provider: str, max_context: int, modalities: tuple[str, ...], **kw: Any):
    return BackendConfig(
        key=key,
        provider=provider,
        url=f"http://127.0.0.1:1/{key}/v1",
        model=f"{key}-model",
        max_context=max_context,
        modalities=modalities,
        **kw,
    )


# Mirrors the brief's backends (note: the brief gives grok image input and gpt audio input).
BACKENDS: dict[str, BackendConfig] = {
    b.key: b
    for b in (
        _backend(
            "local", "openai_compatible", 8192, ("text",), private=True, max_output_tokens=1024
        ),
        _backend(
            "claude",
            "anthropic",
            200_000,
            ("text", "image"),
            cost_per_1k_input=0.003,
            cost_per_1k_output=0.015,
            max_output_tokens=4096,
        ),
        _backend(
            "kimi",
            "openai_compatible",
            256_000,
            ("text",),
            cost_per_1k_input=0.001,
            cost_per_1k_output=0.001,
            max_output_tokens=8192,
        ),
        _backend(
            "gpt",
            "openai",
            128_000,
            ("text", "image", "audio"),
            cost_per_1k_input=0.0025,
            cost_per_1k_output=0.01,
            max_output_tokens=4096,
        ),
        _backend(
            "gemini",
            "gemini",
            1_000_000,
            ("text", "image", "audio", "video"),
            cost_per_1k_input=0.0003,
            cost_per_1k_output=0.0025,
            max_output_tokens=4096,
        ),
        _backend(
            "grok",
            "openai_compatible",
            131_072,
            ("text", "image"),
            cost_per_1k_input=0.0003,
            cost_per_1k_output=0.0005,
            max_output_tokens=1024,
        ),
    )
}


def healthy(*keys: str) -> dict[str, BackendHealth]:
    return {k: BackendHealth(k, HealthState.HEALTHY) for k in (keys or BACKENDS)}


_policy: Policy | None = None


def policy() -> Policy:
    global _policy
    if _policy is None:
        _policy = load_policy(POLICY_PATH, BACKENDS)
    return _policy


def make_task(
    text: str,
    *,
    attachments: tuple[Attachment, ...] = (),
    private: bool = False,
    latency_budget_ms: int = 0,
    max_cost_usd: float = 0.0,
    **request: Any,
) -> Task:
    message = Message(Role.USER, text, attachments=attachments)
    return Task(
        BlindRequest((message,), **request),
        private=private,
        latency_budget_ms=latency_budget_ms,
        max_cost_usd=max_cost_usd,
    )


_TREATY = (
    "Article {n}. The High Contracting Parties, recalling the treaty signed at Utrecht and "
    "the protocols annexed to it, agree that disputes arising under Article {m} shall first be "
    "referred to the joint commission, which shall report within ninety days. Nothing in this "
    "treaty shall prejudice the rights of third States under earlier agreements, and the "
    "commission's findings on fisheries, tariffs and navigation shall be published.\n\n"
)
_GENERIC = (
    "Section {n}. The quarterly figures show revenue of {m} thousand in the northern region, "
    "with operating costs broadly flat and headcount unchanged. The committee noted the delay "
    "to the warehouse project and asked for a revised schedule before the next meeting; the "
    "minutes of item {m} were approved without amendment.\n\n"
)


def build_document(tokens: int, kind: str = "generic") -> str:
    """A realistic-looking document of about ``tokens`` estimated tokens."""
    template = _TREATY if kind == "treaty" else _GENERIC
    per = estimate_tokens(template.format(n=100, m=100))
    parts: list[str] = []
    total = 0
    while total < tokens:  # estimates add up to within a token per paragraph
        for _ in range(max(1, math.ceil((tokens - total) / per))):
            i = len(parts)
            parts.append(template.format(n=i + 1, m=(i * 7) % 97 + 3))
        total = estimate_tokens("".join(parts))
    return "".join(parts)


@dataclass(frozen=True)
class Case:
    line: int
    raw: dict[str, Any]
    task: Task

    @property
    def expected_category(self) -> str:
        return str(self.raw["expected_category"])

    @property
    def expected_backend(self) -> str | None:
        value = self.raw["expected_backend"]
        return None if value is None else str(value)

    @property
    def label(self) -> str:
        text = str(self.raw["text"]).splitlines()[0]
        return f"line {self.line}: {text[:70]}"


def load_corpus() -> list[Case]:
    cases = []
    for n, line in enumerate(CORPUS_PATH.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        raw = json.loads(line)
        text = raw["text"]
        hint = raw.get("input_tokens_hint")
        if hint:
            text = text + "\n\n" + build_document(int(hint), raw.get("document", "generic"))
        attachments = tuple(
            Attachment(a["name"], a["media_type"], b"\x00" * 16) for a in raw.get("attachments", [])
        )
        task = make_task(
            text,
            attachments=attachments,
            private=bool(raw.get("private", False)),
            latency_budget_ms=int(raw.get("latency_budget_ms", 0)),
        )
        cases.append(Case(n, raw, task))
    return cases
