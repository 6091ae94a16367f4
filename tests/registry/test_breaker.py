from __future__ import annotations

import pytest

from registry_svc.breaker import BreakerState, CircuitBreaker
from registry_svc.clock import FakeClock


def breaker(clock: FakeClock, **kw: float) -> CircuitBreaker:
    args: dict[str, float] = {"allowed_fails": 3, "cooldown_time": 30, "failure_window": 60}
    args.update(kw)
    return CircuitBreaker(
        int(args.pop("allowed_fails")),
        args.pop("cooldown_time"),
        args.pop("failure_window"),
        clock,
        **args,
    )


def test_three_failures_open_two_do_not(clock: FakeClock) -> None:
    b = breaker(clock)
    b.record_failure(cause="server_error")
    b.record_failure(cause="server_error")
    assert b.state is BreakerState.CLOSED
    assert b.failures_in_window == 2
    assert b.try_acquire_trial()
    b.record_failure(cause="server_error")
    assert b.state is BreakerState.OPEN
    assert b.opened_reason == "3 failures in 60 s (last: server_error)"
    assert b.cooldown_until == clock.time() + 30
    assert not b.try_acquire_trial()


def test_failures_outside_window_do_not_count(clock: FakeClock) -> None:
    b = breaker(clock)
    b.record_failure()
    clock.advance(10)
    b.record_failure()
    clock.advance(51)  # first failure is now 61 s old
    assert b.failures_in_window == 1
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    assert b.failures_in_window == 2
    clock.advance(60)  # both aged out
    assert b.failures_in_window == 0


def test_success_in_closed_does_not_clear_window(clock: FakeClock) -> None:
    b = breaker(clock)
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is BreakerState.OPEN


def test_exactly_one_trial_after_cooldown(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.advance(29.999)
    assert b.state is BreakerState.OPEN
    assert not b.try_acquire_trial()
    clock.advance(0.001)
    assert b.state is BreakerState.HALF_OPEN
    assert b.try_acquire_trial() is True
    assert b.try_acquire_trial() is False
    assert b.try_acquire_trial() is False
    assert b.trial_outstanding


def test_trial_success_closes_and_clears_window(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.advance(30)
    assert b.try_acquire_trial()
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.failures_in_window == 0
    assert b.opened_reason == ""
    assert b.try_acquire_trial() and b.try_acquire_trial()


def test_trial_failure_reopens_and_extends(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    first_until = b.cooldown_until
    clock.advance(30)
    assert b.try_acquire_trial()
    b.record_failure(cause="timeout")
    assert b.state is BreakerState.OPEN
    assert b.cooldown_until == clock.time() + 30 > first_until
    assert b.opened_reason == "trial failed (last: timeout)"
    assert not b.try_acquire_trial()
    clock.advance(30)
    assert b.state is BreakerState.HALF_OPEN
    assert b.try_acquire_trial()


def test_new_cooldown_never_shortens(clock: FakeClock) -> None:
    b = breaker(clock, cooldown_time=2)
    b.record_failure(retry_after=100, cause="rate_limited")
    until = b.cooldown_until
    assert until == clock.time() + 100
    clock.advance(1)
    b.record_failure(retry_after=5, cause="rate_limited")  # shorter: ignored
    b.record_failure(cause="server_error")  # would trip the threshold: still not shorter
    assert b.cooldown_until == until
    assert b.opened_reason == "rate limited: Retry-After 100 s"
    clock.advance(98.5)
    assert b.state is BreakerState.OPEN
    b.record_failure(retry_after=10, cause="rate_limited")  # longer: extends
    assert b.cooldown_until == clock.time() + 10 > until


def test_retry_after_single_429_opens_for_at_least_retry_after(clock: FakeClock) -> None:
    b = breaker(clock, cooldown_time=2)
    b.record_failure(retry_after=7, cause="rate_limited")
    assert b.state is BreakerState.OPEN
    assert b.failures_in_window == 1
    assert b.opened_reason == "rate limited: Retry-After 7 s"
    clock.advance(6.9)
    assert b.state is BreakerState.OPEN
    assert not b.try_acquire_trial()
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN


def test_cooldown_is_max_of_cooldown_time_and_retry_after_on_trip(clock: FakeClock) -> None:
    b = breaker(clock, cooldown_time=30)
    b.record_failure()
    b.record_failure()
    b.record_failure(retry_after=7, cause="rate_limited")
    assert b.cooldown_until == clock.time() + 30
    assert b.opened_reason == "3 failures in 60 s (last: rate_limited, Retry-After 7 s)"

    c = breaker(clock, cooldown_time=2)
    c.record_failure()
    c.record_failure()
    c.record_failure(retry_after=7, cause="rate_limited")
    assert c.cooldown_until == clock.time() + 7


def test_half_open_failure_with_retry_after_uses_longer(clock: FakeClock) -> None:
    b = breaker(clock, cooldown_time=2)
    b.record_failure(retry_after=3)
    clock.advance(3)
    assert b.state is BreakerState.HALF_OPEN
    b.record_failure(retry_after=50, cause="rate_limited")
    assert b.cooldown_until == clock.time() + 50


def test_lost_trial_regranted_after_trial_timeout(clock: FakeClock) -> None:
    b = breaker(clock, cooldown_time=30, trial_timeout=45)
    for _ in range(3):
        b.record_failure()
    clock.advance(30)
    assert b.try_acquire_trial()
    clock.advance(44.9)
    assert not b.try_acquire_trial()
    clock.advance(0.1)
    assert not b.trial_outstanding
    assert b.try_acquire_trial()
    assert not b.try_acquire_trial()


def test_trial_timeout_defaults_to_cooldown_time(clock: FakeClock) -> None:
    b = breaker(clock, cooldown_time=10)
    assert b.trial_timeout == 10


def test_success_while_open_does_not_close(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    b.record_success()
    assert b.state is BreakerState.OPEN


def test_failure_while_open_counts_but_does_not_extend(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    until = b.cooldown_until
    clock.advance(5)
    b.record_failure()
    assert b.failures_in_window == 4
    assert b.cooldown_until == until


def test_next_transition(clock: FakeClock) -> None:
    b = breaker(clock)
    assert b.next_transition_at() is None
    assert b.seconds_to_transition() is None
    for _ in range(3):
        b.record_failure()
    assert b.next_transition_at() == clock.time() + 30
    clock.advance(12)
    assert b.seconds_to_transition() == pytest.approx(18)
    clock.advance(18)
    assert b.next_transition_at() is None


@pytest.mark.parametrize(("fails", "cooldown", "window"), [(0, 1, 1), (1, -1, 1), (1, 1, 0)])
def test_invalid_parameters(clock: FakeClock, fails: int, cooldown: float, window: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(fails, cooldown, window, clock)


def test_fake_clock_cannot_go_back() -> None:
    c = FakeClock(100.0)
    c.advance(5)
    assert c.time() == 105.0
    assert c.monotonic() == FakeClock.MONOTONIC_ORIGIN + 5
    with pytest.raises(ValueError):
        c.advance(-1)
