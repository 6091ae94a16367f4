from __future__ import annotations

import dataclasses

from router_svc.chain import SKIP_REASONS, Decision, Skip, build_chain, fits_context
from router_svc.classify import classify
from router_svc.policy import parse_policy
from tests.router import helpers as h
from uniwizard.config_types import BackendConfig
from uniwizard.providers.tokens import estimate_task_tokens
from uniwizard.types import Attachment, BackendHealth, HealthState, Task, ToolDef

NOW = 1_700_000_000.0
REVIEW = "Review this pull request diff for race conditions"


def decide(
    task: Task,
    health: dict[str, BackendHealth] | None = None,
    backends: dict[str, BackendConfig] | None = None,
    estimate: int | None = None,
) -> Decision:
    p = h.policy()
    est = estimate_task_tokens(task) if estimate is None else estimate
    return build_chain(
        task,
        classify(task, p, est),
        p,
        h.BACKENDS if backends is None else backends,
        h.healthy() if health is None else health,
        estimate=est,
        now=NOW,
    )


def skip_of(decision: Decision, key: str) -> Skip:
    return next(s for s in decision.skipped if s.backend == key)


def test_healthy_chain_is_the_prefer_list() -> None:
    d = decide(h.make_task(REVIEW))
    assert d.category == "reasoning"
    assert d.backend == "claude"
    assert d.chain == ("claude", "gpt", "gemini", "kimi", "grok", "local")
    assert d.skipped == ()
    assert d.reasons[0].rule == "reasoning"
    assert d.estimated_input_tokens == estimate_task_tokens(h.make_task(REVIEW))


def test_unlisted_backends_are_appended_in_config_order() -> None:
    p = parse_policy(
        "default: k\ncategories:\n  - {name: k, when: {keywords: [x]}, prefer: [gemini, gpt]}\n",
        known_backends=h.BACKENDS,
    )
    task = h.make_task("x")
    d = build_chain(task, classify(task, p), p, h.BACKENDS, h.healthy(), estimate=10, now=NOW)
    assert d.chain == ("gemini", "gpt", "local", "claude", "kimi", "grok")


def test_missing_unknown_and_half_open_health_stay_routable() -> None:
    health = {
        "claude": BackendHealth("claude", HealthState.HALF_OPEN),
        "gpt": BackendHealth("gpt", HealthState.UNKNOWN),
    }  # the others have no entry at all: unknown
    d = decide(h.make_task(REVIEW), health)
    assert d.chain == ("claude", "gpt", "gemini", "kimi", "grok", "local")


def test_health_skips_with_plain_details() -> None:
    health = h.healthy()
    health["claude"] = BackendHealth(
        "claude", HealthState.DISABLED, disabled_by="ops", disabled_reason="maintenance"
    )
    health["gpt"] = BackendHealth("gpt", HealthState.DOWN, reason="missing key OPENAI_API_KEY")
    health["gemini"] = BackendHealth(
        "gemini", HealthState.COOLING_DOWN, cooldown_until=NOW + 11.2, failures_in_window=3
    )
    health["kimi"] = BackendHealth(
        "kimi", HealthState.COOLING_DOWN, cooldown_until=NOW + 30, reason="429 rate limited"
    )
    d = decide(h.make_task(REVIEW), health)
    assert d.backend == "grok"
    assert d.chain == ("grok", "local")
    assert d.skipped == (
        Skip("claude", "disabled", "disabled by ops: maintenance"),
        Skip("gpt", "down", "down: missing key OPENAI_API_KEY"),
        Skip("gemini", "cooling_down", "cooling down, 12 s left: 3 failures in 60 s"),
        Skip("kimi", "cooling_down", "cooling down, 30 s left: 429 rate limited"),
    )
    assert str(d.skipped[0]) == "claude: disabled: disabled by ops: maintenance"


def test_disabled_in_config_without_health() -> None:
    backends = dict(h.BACKENDS)
    backends["claude"] = dataclasses.replace(backends["claude"], enabled=False)
    d = decide(h.make_task(REVIEW), health={}, backends=backends)
    assert d.backend == "gpt"
    assert skip_of(d, "claude").reason == "disabled"


def test_context_too_small() -> None:
    task = h.make_task("Find every mention of the treaty in this document")
    d = decide(task, estimate=41_200)
    assert d.category == "long_context"
    assert d.chain == ("kimi", "gemini", "claude", "gpt", "grok")
    assert skip_of(d, "local") == Skip(
        "local", "context_too_small", "needs ~42,224 tokens (41,200 in + 1,024 out), holds 8,192"
    )
    # the request's own max_output_tokens replaces the backend's default reservation
    big_out = h.make_task("Explain TCP", max_output_tokens=8000)
    d = decide(big_out, estimate=200)
    assert skip_of(d, "local").detail == "needs ~8,200 tokens (200 in + 8,000 out), holds 8,192"


def test_modality() -> None:
    clip = Attachment("clip.mp4", "video/mp4", b"")
    d = decide(h.make_task("What happens in this clip?", attachments=(clip,)))
    assert d.category == "multimodal"
    assert d.chain == ("gemini",)
    assert skip_of(d, "gpt") == Skip(
        "gpt", "modality", "cannot take video (video/mp4); takes text, image, audio"
    )
    assert {s.reason for s in d.skipped} == {"modality"}


def test_private_task_only_reaches_private_backends() -> None:
    d = decide(h.make_task("Summarize my medical results", private=True))
    assert d.category == "private"
    assert d.chain == ("local",)
    assert [s.backend for s in d.skipped] == ["claude", "kimi", "gpt", "gemini", "grok"]
    assert all(s.reason == "not_private" for s in d.skipped)
    # privacy is a hard constraint even when another rule wins the classification
    photo = Attachment("passport.jpg", "image/jpeg", b"")
    d = decide(h.make_task("Describe this", attachments=(photo,), private=True))
    assert d.category == "multimodal"
    assert d.backend is None
    assert skip_of(d, "local").reason == "modality"


def test_private_task_with_private_backends_down_gets_no_backend() -> None:
    health = h.healthy()
    health["local"] = BackendHealth("local", HealthState.DOWN, reason="connection refused")
    d = decide(h.make_task("Draft a reply to my landlord", private=True), health)
    assert d.backend is None
    assert d.chain == ()
    assert skip_of(d, "local") == Skip("local", "down", "down: connection refused")
    assert {s.reason for s in d.skipped} == {"down", "not_private"}


def test_no_tools() -> None:
    backends = dict(h.BACKENDS)
    backends["claude"] = dataclasses.replace(backends["claude"], tools=False)
    tool = ToolDef("run_tests", "Run the test suite")
    d = decide(h.make_task(REVIEW, tools=(tool,)), backends=backends)
    assert d.backend == "gpt"
    assert skip_of(d, "claude") == Skip(
        "claude", "no_tools", "the request has 1 tool; no tool support"
    )


def test_over_cost_ceiling() -> None:
    # 5,000 in + 4,096 out: claude 0.015 + 0.06144, gpt 0.0125 + 0.04096: both > 0.05
    task = h.make_task(REVIEW, max_cost_usd=0.05)
    d = decide(task, estimate=5_000)
    assert d.category == "reasoning"
    assert d.backend == "gemini"
    assert skip_of(d, "claude") == Skip(
        "claude", "over_cost_ceiling", "estimated $0.0764 > ceiling $0.0500"
    )
    assert skip_of(d, "gpt").reason == "over_cost_ceiling"
    # no ceiling: nothing skipped for cost
    assert decide(h.make_task(REVIEW), estimate=5_000).backend == "claude"


def test_not_configured() -> None:
    backends = {k: v for k, v in h.BACKENDS.items() if k != "claude"}
    d = decide(h.make_task(REVIEW), backends=backends)
    assert d.backend == "gpt"
    assert skip_of(d, "claude") == Skip(
        "claude", "not_configured", "named by the policy, not configured"
    )


def test_every_skip_reason_is_known() -> None:
    seen: set[str] = set()
    for case in h.load_corpus():
        seen.update(s.reason for s in decide(case.task).skipped)
    assert seen <= set(SKIP_REASONS)
    assert {"modality", "not_private", "context_too_small"} <= seen


def test_fits_context() -> None:
    local = h.BACKENDS["local"]
    assert fits_context(local, 7168, 0)  # 7,168 + 1,024 default reservation = 8,192
    assert not fits_context(local, 7169, 0)
    assert fits_context(local, 8000, 192)
    assert not fits_context(local, 8000, 193)
    assert fits_context(h.BACKENDS["kimi"], 41_200, 0)
