"""The pure text helpers of the Evennia side (no database, no services)."""

from __future__ import annotations

from evennia.utils import ansi

from uniwizard_client import AttemptInfo, RouterError
from uniwizard_evennia import text
from uniwizard_evennia.text import error_text, health_changes, health_table, tried_text


def _attempt(backend: str, outcome: str) -> AttemptInfo:
    return AttemptInfo(backend, outcome, 1.0, 0, 0, 0.0)


def test_tried_folds_repeats_and_caps_the_list() -> None:
    attempts = [_attempt(b, "network") for b in ("gpt", "gpt", "claude", "claude")]
    assert tried_text(attempts) == "gpt network x2, claude network x2"
    many = [_attempt(f"b{i}", "overloaded") for i in range(9)]
    assert tried_text(many, limit=3) == "b0 overloaded, b1 overloaded, b2 overloaded, …"


def test_error_text_is_one_line_with_the_outcome_class() -> None:
    exc = RouterError("every backend\nfailed " + "x" * 500, outcome="rate_limited",
                      attempts=(_attempt("grok", "rate_limited"),))
    line = error_text("think", exc)
    assert "\n" not in line and "(rate_limited)" in line and "[tried grok rate_limited]" in line
    assert len(line) < 220
    assert "failed (internal):|n ValueError: boom" in error_text("route", ValueError("boom"))


def test_health_changes_first_poll_and_transitions() -> None:
    up = {"state": "healthy"}
    down = {"state": "down", "reason": "ANTHROPIC_API_KEY is not set"}
    assert health_changes({}, {"gpt": up}, 0.0) == []
    assert health_changes({}, {"claude": down}, 0.0) == [
        "|w[Uniwizard]|n |rbackend claude is down: ANTHROPIC_API_KEY is not set.|n"]
    assert health_changes({"claude": down}, {"claude": down}, 0.0) == []
    assert "is back (healthy)" in health_changes({"claude": down}, {"claude": up}, 0.0)[0]
    assert health_changes({"gpt": up}, {"gpt": {"state": "half_open"}}, 0.0) == []


def test_health_table_before_the_first_poll() -> None:
    assert "no backend health yet" in health_table({}, 10.0, 0.0)


def test_budget_changes_are_announced_once_with_the_numbers() -> None:
    def row(state: str, spent: float) -> dict[str, object]:
        budget = {"state": state, "daily_usd": 5.0, "monthly_usd": 0.0, "spent_today_usd": spent,
                  "spent_month_usd": spent}
        return {"state": "healthy", "budget": budget}

    ok, warn, over = row("ok", 1.0), row("warning", 4.5), row("over", 5.02)
    said = text.health_changes({"claude": ok}, {"claude": warn}, 0.0)
    assert [ansi.strip_ansi(line) for line in said] == [
        "[Uniwizard] claude's daily budget is 90% spent ($4.50 of $5.00)."
    ]
    assert text.health_changes({"claude": warn}, {"claude": warn}, 0.0) == []
    said = [ansi.strip_ansi(line) for line in text.health_changes({"claude": warn},
                                                                  {"claude": over}, 0.0)]
    assert said == ["[Uniwizard] claude's daily budget is spent ($5.02 of $5.00): "
                    "tasks go to other backends."]
    said = [ansi.strip_ansi(line) for line in text.health_changes({"claude": over},
                                                                  {"claude": ok}, 0.0)]
    assert said == ["[Uniwizard] claude's budget has room again."]
