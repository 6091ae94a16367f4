from __future__ import annotations

import dataclasses

import pytest

from registry_svc.book import HealthBook, UnknownBackendError
from registry_svc.clock import FakeClock
from registry_svc.store import OperatorState
from uniwizard.types import BackendHealth, HealthState, Outcome

from .conftest import make_config

ENV = {"ANTHROPIC_API_KEY": "sk-secret-value"}


def book_of(clock: FakeClock, **configs: dict[str, object]) -> HealthBook:
    cfgs = {k: make_config(k, **v) for k, v in (configs or {"local": {}}).items()}
    return HealthBook(cfgs, clock, ENV)


def keys(changes: list[BackendHealth]) -> list[str]:
    return [h.key for h in changes]


def test_initial_unknown_and_routable(clock: FakeClock) -> None:
    book = book_of(clock)
    h = book.get("local")
    assert h.state is HealthState.UNKNOWN and h.routable
    assert h.changed_at == clock.time()
    assert book.snapshot() == {"local": h}
    assert book.try_acquire_trial("local")


def test_three_failures_cool_down_with_reason(clock: FakeClock) -> None:
    book = book_of(clock)
    for _ in range(2):
        book.record_outcome("local", Outcome.SERVER_ERROR)
    assert book.get("local").state is HealthState.UNKNOWN
    changes = book.record_outcome("local", Outcome.SERVER_ERROR)
    assert len(changes) == 1
    h = changes[0]
    assert h.state is HealthState.COOLING_DOWN
    assert h.reason == "3 failures in 60 s (last: server_error)"
    assert h.cooldown_until == clock.time() + 30
    assert h.failures_in_window == 3
    assert h.last_outcome == "server_error"
    assert not book.try_acquire_trial("local")


def test_half_open_one_trial_then_success_closes(clock: FakeClock) -> None:
    book = book_of(clock)
    for _ in range(3):
        book.record_outcome("local", Outcome.TIMEOUT)
    assert book.next_wakeup_in() == 30
    clock.advance(30)
    assert book.next_wakeup_in() == 30  # next: the failures leave the 60 s window
    [h] = book.tick()
    assert h.state is HealthState.HALF_OPEN and h.routable
    assert h.cooldown_until == 0.0
    assert "3 failures in 60 s (last: timeout)" in h.reason
    assert book.tick() == []
    assert book.try_acquire_trial("local")
    assert not book.try_acquire_trial("local")
    [h] = book.record_outcome("local", Outcome.SUCCESS)
    assert h.state is HealthState.HEALTHY and h.failures_in_window == 0 and h.reason == ""


def test_rate_limited_retry_after_longer_than_cooldown(clock: FakeClock) -> None:
    book = book_of(clock, local={"cooldown_time": 2})
    [h] = book.record_outcome("local", Outcome.RATE_LIMITED, retry_after_s=7)
    assert h.state is HealthState.COOLING_DOWN
    assert h.reason == "rate limited: Retry-After 7 s"
    assert h.cooldown_until == clock.time() + 7
    clock.advance(6)
    assert book.tick() == [] and book.get("local").state is HealthState.COOLING_DOWN
    clock.advance(1)
    assert book.get("local").state is HealthState.HALF_OPEN


def test_auth_down_until_probe_success(clock: FakeClock) -> None:
    book = book_of(clock)
    [h] = book.record_outcome("local", Outcome.AUTH, detail="401")
    assert h.state is HealthState.DOWN
    assert h.reason == "authentication failed (401)"
    assert h.failures_in_window == 0  # auth latches DOWN, it does not feed the breaker
    assert not book.try_acquire_trial("local")
    assert book.needs_probe("local")
    [h] = book.record_probe("local", ok=True, latency_ms=12.0)
    assert h.state is HealthState.HEALTHY and h.reason == ""


def test_auth_probe_failure_marks_down(clock: FakeClock) -> None:
    book = book_of(clock)
    [h] = book.record_probe("local", False, 5.0, "401", Outcome.AUTH)
    assert (h.state, h.reason) == (HealthState.DOWN, "authentication failed (401)")
    assert h.last_probe_ok is False
    [h] = book.record_outcome("local", Outcome.SUCCESS)  # a real call worked: auth is fine
    assert h.state is HealthState.HEALTHY


def test_auth_cleared_by_reload(clock: FakeClock) -> None:
    book = book_of(clock)
    book.record_outcome("local", Outcome.AUTH, detail="403")
    result = book.reload(book.configs(), ENV)
    assert [h.state for h in result.changes] == [HealthState.UNKNOWN]
    assert result.added == result.changed == result.removed == []


def test_cancelled_changes_nothing(clock: FakeClock) -> None:
    book = book_of(clock)
    book.record_outcome("local", Outcome.SERVER_ERROR)
    before = book.get("local")
    for _ in range(5):
        assert book.record_outcome("local", Outcome.CANCELLED) == []  # nothing else is due
        assert book.record_probe("local", False, 1.0, "cancelled", Outcome.CANCELLED) == []
    assert book.get("local") == before
    assert before.last_outcome == "server_error"


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.BAD_REQUEST,
        Outcome.REFUSAL,
        Outcome.CONTENT_POLICY,
        Outcome.CONTEXT_WINDOW,
        Outcome.IDENTITY_LEAK,
    ],
)
def test_request_side_outcomes_do_not_count(clock: FakeClock, outcome: Outcome) -> None:
    book = book_of(clock)
    [h] = book.record_outcome("local", outcome)
    assert h.last_outcome == outcome.value
    for _ in range(10):
        assert book.record_outcome("local", outcome) == []
    h = book.get("local")
    assert h.state is HealthState.UNKNOWN and h.failures_in_window == 0


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.NETWORK,
        Outcome.OVERLOADED,
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.EMPTY,
        Outcome.TRUNCATED,
        Outcome.MALFORMED,
        Outcome.RATE_LIMITED,
    ],
)
def test_provider_failures_count(clock: FakeClock, outcome: Outcome) -> None:
    book = book_of(clock)
    for _ in range(3):
        book.record_outcome("local", outcome)
    h = book.get("local")
    assert h.state is HealthState.COOLING_DOWN
    assert h.reason == f"3 failures in 60 s (last: {outcome.value})"


def test_probe_failures_count_and_success_while_open_does_not_close(clock: FakeClock) -> None:
    book = book_of(clock)
    for i in range(3):
        [h] = book.record_probe("local", False, 5.0, "connection refused", Outcome.NETWORK)
        assert h.failures_in_window == i + 1
    assert h.state is HealthState.COOLING_DOWN
    assert h.reason == "3 failures in 60 s (last: connection refused)"
    [h] = book.record_probe("local", True, 3.0)  # last_probe_ok changed...
    assert h.state is HealthState.COOLING_DOWN  # ...but the breaker stays open
    clock.advance(30)
    [h] = book.record_probe("local", True, 3.0)  # HALF_OPEN: counts as the trial's success
    assert h.state is HealthState.HEALTHY


def test_probe_failure_in_half_open_reopens(clock: FakeClock) -> None:
    book = book_of(clock)
    for _ in range(3):
        book.record_outcome("local", Outcome.OVERLOADED)
    clock.advance(30)
    [h] = book.record_probe("local", False, 5000.0, "timeout", Outcome.TIMEOUT)
    assert h.state is HealthState.COOLING_DOWN
    assert h.reason == "trial failed (last: timeout)"
    assert h.cooldown_until == clock.time() + 30


def test_stable_probes_do_not_spam(clock: FakeClock) -> None:
    book = book_of(clock)
    [h] = book.record_probe("local", True, 10.0)
    assert h.state is HealthState.HEALTHY
    changed_at = h.changed_at
    for latency in (11.0, 12.0, 9.0):
        clock.advance(30)
        assert book.record_probe("local", True, latency) == []
    h = book.get("local")
    assert h.last_probe_latency_ms == 9.0 and h.last_probe_at == clock.time()
    assert h.changed_at == changed_at


def test_change_lists_exact(clock: FakeClock) -> None:
    book = book_of(clock, a={}, b={})
    clock.advance(1)
    changes = book.record_outcome("a", Outcome.SERVER_ERROR)
    assert keys(changes) == ["a"]
    assert changes[0].changed_at == clock.time()
    assert changes[0] == book.get("a")
    assert book.record_outcome("b", Outcome.REFUSAL)[0].key == "b"
    assert book.record_outcome("b", Outcome.REFUSAL) == []
    assert keys(book.disable("a", "alice", "testing")) == ["a"]
    assert book.disable("a", "alice", "testing") == []
    assert keys(book.enable("a", "alice")) == ["a"]
    assert book.enable("a", "alice") == []
    assert book.tick() == []


def test_time_driven_change_is_reported_by_next_call(clock: FakeClock) -> None:
    book = book_of(clock, a={}, b={})
    for _ in range(3):
        book.record_outcome("a", Outcome.SERVER_ERROR)
    clock.advance(31)
    before = book.snapshot()["a"]
    assert before.state is HealthState.HALF_OPEN  # snapshot shows it, does not publish
    changes = book.record_outcome("b", Outcome.SUCCESS)
    assert sorted(keys(changes)) == ["a", "b"]
    assert book.tick() == []


def test_missing_key_down_and_not_probed(clock: FakeClock) -> None:
    cfgs = {
        "claude": make_config("claude", provider="anthropic", api_key_env="ANTHROPIC_API_KEY"),
        "gpt": make_config("gpt", provider="openai", api_key_env="OPENAI_API_KEY"),
        "local": make_config("local"),
    }
    env = {"ANTHROPIC_API_KEY": "sk-secret-value", "OPENAI_API_KEY": "  "}
    book = HealthBook(cfgs, clock, env)
    gpt = book.get("gpt")
    assert gpt.state is HealthState.DOWN
    assert gpt.reason == "API key environment variable OPENAI_API_KEY is not set"
    assert not book.needs_probe("gpt")
    assert book.needs_probe("claude") and book.needs_probe("local")
    assert [c.key for c in book.probe_targets()] == ["claude", "local"]
    assert not book.try_acquire_trial("gpt")
    for h in book.snapshot().values():
        assert "sk-secret-value" not in repr(h)
    # Setting the variable and reloading brings it back.
    result = book.reload(cfgs, {**env, "OPENAI_API_KEY": "sk-x"})
    assert [(h.key, h.state) for h in result.changes] == [("gpt", HealthState.UNKNOWN)]
    assert book.needs_probe("gpt")
    # Removing it again marks it DOWN again.
    result = book.reload(cfgs, {})
    assert sorted(keys(result.changes)) == ["claude", "gpt"]


def test_disable_wins_and_enable_restores(clock: FakeClock) -> None:
    book = book_of(clock)
    for _ in range(3):
        book.record_outcome("local", Outcome.SERVER_ERROR)
    [h] = book.disable("local", "alice", "maintenance")
    assert h.state is HealthState.DISABLED and not h.routable
    assert (h.disabled_by, h.disabled_reason) == ("alice", "maintenance")
    assert h.reason == "disabled by alice: maintenance"
    assert not book.try_acquire_trial("local")
    clock.advance(30)
    assert book.tick() == []  # still DISABLED; the breaker moved underneath
    assert not book.try_acquire_trial("local")
    [h] = book.enable("local", "bob")
    assert h.state is HealthState.HALF_OPEN
    assert h.disabled_by == "" and h.disabled_reason == ""
    assert book.operator_state() == {}


def test_disable_wins_over_down(clock: FakeClock) -> None:
    cfgs = {"claude": make_config("claude", api_key_env="ANTHROPIC_API_KEY")}
    book = HealthBook(cfgs, clock, {})
    book.disable("claude", "alice")
    h = book.get("claude")
    assert h.state is HealthState.DISABLED and h.reason == "disabled by alice"
    book.enable("claude", "alice")
    assert book.get("claude").state is HealthState.DOWN


def test_config_disabled_and_operator_enable_override(clock: FakeClock) -> None:
    cfgs = {"grok": make_config("grok", enabled=False)}
    book = HealthBook(cfgs, clock, {})
    h = book.get("grok")
    assert (h.state, h.disabled_by) == (HealthState.DISABLED, "config")
    [h] = book.enable("grok", "alice", "trying it")
    assert h.state is HealthState.UNKNOWN
    assert book.operator_state()["grok"].disabled is False
    # Config edit of `enabled` is the newer decision: the override is dropped.
    result = book.reload({"grok": make_config("grok", enabled=True)}, {})
    assert result.changed == ["grok"]
    assert book.operator_state() == {}
    assert book.get("grok").state is HealthState.UNKNOWN


def test_operator_calls_on_unknown_key_raise(clock: FakeClock) -> None:
    book = book_of(clock)
    for call in (
        lambda: book.get("nope"),
        lambda: book.disable("nope", "alice"),
        lambda: book.enable("nope", "alice"),
        lambda: book.try_acquire_trial("nope"),
        lambda: book.needs_probe("nope"),
    ):
        with pytest.raises(UnknownBackendError):
            call()
    assert book.record_outcome("nope", Outcome.SERVER_ERROR) == []
    assert book.record_probe("nope", True, 1.0) == []


def test_reload_semantics(clock: FakeClock) -> None:
    old = {
        "same": make_config("same"),
        "changed": make_config("changed"),
        "gone": make_config("gone"),
        "off": make_config("off"),
    }
    book = HealthBook(old, clock, {})
    for key in old:
        book.record_outcome(key, Outcome.SUCCESS)
        book.record_outcome(key, Outcome.SERVER_ERROR)
    book.disable("off", "alice", "cost")
    clock.advance(5)
    new = {
        "same": make_config("same"),
        "changed": make_config("changed", url="http://localhost:9999/v1"),
        "off": make_config("off", model="other"),
        "new": make_config("new"),
    }
    same_breaker = book.breaker("same")
    result = book.reload(new, {})
    assert result.added == ["new"]
    assert result.changed == ["changed", "off"]
    assert result.removed == ["gone"]
    # "off" stays DISABLED but its fresh breaker forgot the failure: a change too.
    assert sorted(keys(result.changes)) == ["changed", "new", "off"]
    snap = book.snapshot()
    assert set(snap) == {"same", "changed", "off", "new"}
    assert snap["same"].state is HealthState.HEALTHY and snap["same"].failures_in_window == 1
    assert book.breaker("same") is same_breaker
    assert snap["changed"].state is HealthState.UNKNOWN
    assert snap["changed"].failures_in_window == 0 and snap["changed"].last_outcome == ""
    assert snap["new"].state is HealthState.UNKNOWN and snap["new"].changed_at == clock.time()
    assert snap["off"].state is HealthState.DISABLED and snap["off"].disabled_by == "alice"
    assert book.configs()["changed"].url == "http://localhost:9999/v1"
    with pytest.raises(UnknownBackendError):
        book.get("gone")


def test_removed_key_keeps_operator_state_for_readd(clock: FakeClock) -> None:
    book = HealthBook({"a": make_config("a"), "b": make_config("b")}, clock, {})
    book.disable("b", "alice", "billing")
    book.reload({"a": make_config("a")}, {})
    assert "b" in book.operator_state()
    result = book.reload({"a": make_config("a"), "b": make_config("b")}, {})
    assert result.added == ["b"]
    assert book.get("b").state is HealthState.DISABLED


def test_apply_operator_state(clock: FakeClock) -> None:
    book = book_of(clock, a={}, b={})
    state = {
        "a": OperatorState(True, "alice", "cost", 123.0),
        "zzz": OperatorState(True, "x", "", 1),
    }
    changes = book.apply_operator_state(state)
    assert keys(changes) == ["a"]
    assert changes[0].disabled_reason == "cost"
    assert book.operator_state() == state


def test_lost_trial_regranted_after_trial_timeout(clock: FakeClock) -> None:
    # trial timeout = max(timeout, cooldown_time) = 45 s
    book = book_of(clock, local={"timeout": 45.0, "cooldown_time": 30.0})
    for _ in range(3):
        book.record_outcome("local", Outcome.SERVER_ERROR)
    clock.advance(30)
    assert book.try_acquire_trial("local")
    clock.advance(44)
    assert not book.try_acquire_trial("local")
    clock.advance(1)
    assert book.try_acquire_trial("local")
    assert not book.try_acquire_trial("local")


def test_snapshot_is_a_copy(clock: FakeClock) -> None:
    book = book_of(clock)
    snap = book.snapshot()
    snap.clear()
    assert book.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        book.get("local").state = HealthState.DOWN  # type: ignore[misc]


def test_failure_leaving_window_is_scheduled_and_published(clock: FakeClock) -> None:
    book = book_of(clock)
    book.record_outcome("local", Outcome.SERVER_ERROR)
    assert book.next_wakeup_in() == 60
    clock.advance(20)
    book.record_outcome("local", Outcome.SERVER_ERROR)
    assert book.next_wakeup_in() == 40
    clock.advance(40)
    [h] = book.tick()
    assert h.failures_in_window == 1
    assert book.next_wakeup_in() == 20
    clock.advance(20)
    [h] = book.record_outcome("local", Outcome.CANCELLED)  # ignored, but publishes the drop
    assert h.failures_in_window == 0
    assert book.next_wakeup_in() is None
