"""Property tests: random sequences of outcomes, probes, operator calls and time."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from registry_svc.book import HealthBook
from registry_svc.breaker import BreakerState, CircuitBreaker
from registry_svc.clock import FakeClock
from uniwizard.types import BackendHealth, HealthState, Outcome

from .conftest import make_config

breaker_ops = st.lists(
    st.one_of(
        st.tuples(st.just("fail"), st.sampled_from([0.0, 0.0, 1.0, 7.0, 45.0])),
        st.tuples(st.just("success"), st.just(0.0)),
        st.tuples(st.just("acquire"), st.just(0.0)),
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=40)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=breaker_ops,
    allowed=st.integers(1, 4),
    cooldown=st.sampled_from([1.0, 2.0, 30.0]),
    trial_timeout=st.sampled_from([5.0, 60.0]),
)
def test_breaker_invariants(
    ops: list[tuple[str, float]], allowed: int, cooldown: float, trial_timeout: float
) -> None:
    clock = FakeClock()
    b = CircuitBreaker(allowed, cooldown, 60.0, clock, trial_timeout=trial_timeout)
    trial_since: float | None = None  # the test's own model of the outstanding trial
    must_stay_open_until = float("-inf")  # monotonic: what Retry-After promised
    last_until = b.cooldown_until
    for op, arg in ops:
        state = b.state
        if op == "fail":
            b.record_failure(retry_after=arg, cause="x")
            trial_since = None
            if arg:
                must_stay_open_until = max(must_stay_open_until, clock.monotonic() + arg)
        elif op == "success":
            b.record_success()
            if state is BreakerState.OPEN:
                assert b.state is BreakerState.OPEN  # a success never closes early
            trial_since = None
        elif op == "acquire":
            granted = b.try_acquire_trial()
            if state is BreakerState.CLOSED:
                assert granted
            elif state is BreakerState.OPEN:
                assert not granted
            if state is BreakerState.HALF_OPEN:
                live = trial_since is not None and clock.monotonic() - trial_since < trial_timeout
                assert granted != live  # at most one trial outstanding, lost trials re-granted
                if granted:
                    trial_since = clock.monotonic()
        else:
            clock.advance(arg)
        assert b.cooldown_until >= last_until  # never shortened
        last_until = b.cooldown_until
        if clock.monotonic() < must_stay_open_until:
            assert b.state is BreakerState.OPEN
        if b.state is not BreakerState.HALF_OPEN:
            trial_since = None
        assert 0 <= b.failures_in_window


OUTCOMES = list(Outcome)

book_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("outcome"),
            st.sampled_from(["a", "b"]),
            st.sampled_from(OUTCOMES),
            st.sampled_from([0.0, 3.0, 50.0]),
        ),
        st.tuples(
            st.just("probe"),
            st.sampled_from(["a", "b"]),
            st.sampled_from([None, Outcome.TIMEOUT, Outcome.AUTH, Outcome.CANCELLED]),
            st.floats(0, 500),
        ),
        st.tuples(st.just("disable"), st.sampled_from(["a", "b"]), st.none(), st.just(0.0)),
        st.tuples(st.just("enable"), st.sampled_from(["a", "b"]), st.none(), st.just(0.0)),
        st.tuples(st.just("acquire"), st.sampled_from(["a", "b"]), st.none(), st.just(0.0)),
        st.tuples(st.just("tick"), st.just("a"), st.none(), st.just(0.0)),
        st.tuples(st.just("reload"), st.just("a"), st.none(), st.just(0.0)),
        st.tuples(st.just("advance"), st.just("a"), st.none(), st.floats(0, 40)),
    ),
    max_size=60,
)


def _sig(h: BackendHealth) -> BackendHealth:
    return dataclasses.replace(h, last_probe_at=0.0, last_probe_latency_ms=0.0, changed_at=0.0)


@settings(max_examples=300, deadline=None)
@given(ops=book_ops)
def test_book_invariants(ops: list[tuple[str, str, Outcome | None, float]]) -> None:
    clock = FakeClock()
    cfgs = {k: make_config(k, cooldown_time=10.0, timeout=20.0) for k in ("a", "b")}
    book = HealthBook(cfgs, clock, {})
    view = dict(book.snapshot())  # what a WatchHealth client holds
    disabled: set[str] = set()
    for op, key, outcome, num in ops:
        changes: list[BackendHealth] | None = None
        before = {k: h.cooldown_until for k, h in book.snapshot().items()}
        if op == "outcome":
            assert outcome is not None
            changes = book.record_outcome(key, outcome, retry_after_s=num)
        elif op == "probe":
            changes = book.record_probe(key, outcome is None, num, "d", outcome)
        elif op == "disable":
            changes = book.disable(key, "op", "r")
            disabled.add(key)
        elif op == "enable":
            changes = book.enable(key, "op")
            disabled.discard(key)
        elif op == "acquire":
            state = book.get(key).state
            granted = book.try_acquire_trial(key)
            if state not in (HealthState.HALF_OPEN,):
                assert granted == (state in (HealthState.HEALTHY, HealthState.UNKNOWN))
            if granted and state is HealthState.HALF_OPEN:
                assert not book.try_acquire_trial(key)  # at most one outstanding
        elif op == "tick":
            changes = book.tick()
        elif op == "reload":
            result = book.reload(cfgs, {})  # same configs: health kept, only auth cleared
            assert result.added == result.changed == result.removed == []
            changes = result.changes
        else:
            due = book.next_wakeup_in()
            clock.advance(num)
            changes = book.tick()
            if due is None or num < due - 1e-6:
                assert changes == []  # nothing changes with time unless a wake-up was due
        snap = book.snapshot()
        for k, h in snap.items():
            if k in disabled:
                assert h.state is HealthState.DISABLED  # DISABLED always wins
            else:
                assert h.state is not HealthState.DISABLED
            if h.state is HealthState.COOLING_DOWN and before[k]:
                assert h.cooldown_until >= before[k]  # never shortened while open
        if changes is not None:
            assert len({h.key for h in changes}) == len(changes)
            for h in changes:
                assert _sig(view[h.key]) != _sig(h)  # only real changes are sent
                view[h.key] = h
            # After any publishing call, the client's view equals the truth.
            assert {k: _sig(h) for k, h in view.items()} == {k: _sig(h) for k, h in snap.items()}
