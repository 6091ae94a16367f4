"""Configuration for routing v2: budgets and learning in backends.yaml, adapt in routing.yaml."""

from __future__ import annotations

import pytest

from router_svc.policy import OFF, AdaptConfig, parse_policy
from uniwizard.config import ConfigError, dump_config, parse_config
from uniwizard.config_types import Budget, LearningConfig

BACKENDS = """\
backends:
  claude:
    provider: anthropic
    url: https://api.anthropic.com/v1
    model: claude-x
    api_key_env: ANTHROPIC_API_KEY
{extra}
{top}
"""


def config(extra: str = "", top: str = ""):  # type: ignore[no-untyped-def]
    return parse_config(BACKENDS.format(extra=extra, top=top), "configs/b.yaml")


def test_budgets_and_learning_load_and_round_trip() -> None:
    c = config(
        "    budget: {daily_usd: 5, monthly_usd: 60}",
        "budget: {monthly_usd: 300, warn_at: 0.8}\nlearning: {window: 25, half_life_hours: 48}",
    )
    assert c.backends["claude"].budget == Budget(5.0, 60.0, 0.9)
    assert c.budget == Budget(0.0, 300.0, 0.8)
    assert c.learning == LearningConfig(25, 48.0)
    again = parse_config(dump_config(c), "configs/b.yaml")
    assert again.backends == c.backends and again.budget == c.budget
    assert again.learning == c.learning
    plain = config()
    assert not plain.backends["claude"].budget.capped and not plain.budget.capped


@pytest.mark.parametrize(
    ("extra", "top", "message"),
    [
        (
            "    budget: {daily_usd: 0}",
            "",
            "backends.claude.budget: needs daily_usd or monthly_usd",
        ),
        (
            "    budget: {daily_usd: -1}",
            "",
            "backends.claude.budget.daily_usd: must not be negative",
        ),
        ("    budget: {daily_usd: 5, warn_at: 1.2}", "", "warn_at: is a fraction of the cap"),
        ("    budget: {daily: 5}", "", "backends.claude.budget.daily: unknown key"),
        ("", "learning: {window: 0}", "learning.window: must be at least 1"),
        ("", "learning: {half_life: 3}", "learning.half_life: unknown key"),
    ],
)
def test_bad_v2_settings_name_the_key(extra: str, top: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("$", r"\$")):
        config(extra, top)


POLICY = """\
version: 1
default: knowledge
{adapt}
categories:
  - name: knowledge
    when: {{keywords: [who]}}
    prefer: [gpt, claude]
{category}
"""


def policy(adapt: str = "", category: str = ""):  # type: ignore[no-untyped-def]
    return parse_policy(POLICY.format(adapt=adapt, category=category), "configs/r.yaml")


def test_adapt_is_off_unless_asked_for() -> None:
    assert policy().adapt == OFF and policy().rule("knowledge").adapt == OFF
    assert policy("adapt: off").rule("knowledge").adapt.enabled is False
    assert policy("adapt: on").rule("knowledge").adapt == AdaptConfig(enabled=True)


def test_a_category_overrides_the_global_adapt() -> None:
    p = policy(
        "adapt: {weights: {cost: 0.5}, min_count: 3, explore: 0.1}",
        "    adapt: {weights: {latency: 0.3}}",
    )
    assert p.adapt == AdaptConfig(True, 1.0, 0.1, 0.5, 3, 0.1)
    assert p.rule("knowledge").adapt == AdaptConfig(True, 1.0, 0.3, 0.5, 3, 0.1)
    off = policy("adapt: {explore: 0.2}", "    adapt: off")
    assert off.rule("knowledge").adapt.enabled is False


@pytest.mark.parametrize(
    ("adapt", "message"),
    [
        ("adapt: {explore: 0.9}", "adapt.explore: is the share of decisions that explore"),
        ("adapt: {weights: {quality: 0, latency: 0, cost: 0}}", "weights must not all be 0"),
        ("adapt: {weights: {speed: 1}}", "adapt.weights.speed: unknown key"),
        ("adapt: {min_count: 0}", "adapt.min_count: must be at least 1"),
        ("adapt: maybe", "adapt: must be true or false"),
    ],
)
def test_bad_adapt_settings_name_the_key(adapt: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policy(adapt)
