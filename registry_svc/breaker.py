"""A circuit breaker for one backend: pure logic, time from a :class:`Clock`.

States: CLOSED → OPEN → HALF_OPEN → CLOSED (or back to OPEN).

* CLOSED: failures are timestamps in a sliding ``failure_window``; the ``allowed_fails``-th
  failure inside the window opens the breaker for ``cooldown_time`` seconds, or for the
  provider's Retry-After when that is longer. A success in CLOSED does *not* clear the window:
  the window measures a failure rate, so a flaky backend that fails three times a minute opens
  even if calls succeed in between.
* A failure that carries a Retry-After (a 429, or a 503 that sent one) opens the breaker for at
  least Retry-After seconds at once, even below ``allowed_fails``: the provider said when to
  come back. Below the threshold the cooldown is exactly Retry-After (the provider's word, not
  our longer ``cooldown_time``); when the threshold trips it is ``max(cooldown_time, retry)``.
* OPEN: expiry is lazy — :attr:`state` compares the clock with the cooldown end, so nothing has
  to run at the expiry instant; :meth:`next_transition_at` tells a server when to wake up to
  publish the OPEN → HALF_OPEN change. Failures reported while open (stragglers sent before it
  opened) count in the window but only extend the cooldown when they carry a Retry-After.
  Successes while open are ignored: only the half-open trial may close the breaker.
* HALF_OPEN: :meth:`try_acquire_trial` grants exactly one trial. Any success closes (and clears
  the window); any failure re-opens for ``max(cooldown_time, retry_after)``. A trial that never
  reports (the caller died, the report was lost) expires after ``trial_timeout`` seconds and a
  new trial is granted, so a lost trial cannot wedge the breaker.

A cooldown is only ever extended, never shortened: ``cooldown_until = max(old, now + d)``.
"""

from __future__ import annotations

import enum
from collections import deque

from registry_svc.clock import Clock


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _secs(value: float) -> str:
    return f"{value:g} s"


class CircuitBreaker:
    def __init__(
        self,
        allowed_fails: int,
        cooldown_time: float,
        failure_window: float,
        clock: Clock,
        trial_timeout: float | None = None,
    ) -> None:
        if allowed_fails < 1:
            raise ValueError(f"allowed_fails must be at least 1, got {allowed_fails}")
        if cooldown_time < 0 or failure_window <= 0:
            raise ValueError(
                f"cooldown_time must be >= 0 and failure_window > 0, "
                f"got {cooldown_time} and {failure_window}"
            )
        self.allowed_fails = allowed_fails
        self.cooldown_time = float(cooldown_time)
        self.failure_window = float(failure_window)
        self.trial_timeout = float(cooldown_time if trial_timeout is None else trial_timeout)
        self._clock = clock
        self._failures: deque[float] = deque()  # monotonic timestamps
        self._open = False  # OPEN or HALF_OPEN (the cooldown decides which)
        self._open_until_mono = float("-inf")
        self._cooldown_until = 0.0  # epoch seconds, reported
        self._trial_started: float | None = None  # monotonic; None = no trial outstanding
        self.opened_reason = ""

    # -- reading ---------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if self._clock.monotonic() < self._open_until_mono:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def failures_in_window(self) -> int:
        self._prune()
        return len(self._failures)

    @property
    def cooldown_until(self) -> float:
        """Epoch seconds at which the latest cooldown ends (kept after it ends; never decreases)."""
        return self._cooldown_until

    @property
    def trial_outstanding(self) -> bool:
        """True while a granted half-open trial has neither reported nor timed out."""
        if self._trial_started is None or self.state is not BreakerState.HALF_OPEN:
            return False
        return self._clock.monotonic() - self._trial_started < self.trial_timeout

    def next_transition_at(self) -> float | None:
        """Epoch seconds of the next time-driven state change (OPEN → HALF_OPEN), if any."""
        return self._cooldown_until if self.state is BreakerState.OPEN else None

    def seconds_to_transition(self) -> float | None:
        """Like :meth:`next_transition_at`, as a delay from now on the monotonic clock."""
        if self.state is not BreakerState.OPEN:
            return None
        return max(0.0, self._open_until_mono - self._clock.monotonic())

    def next_change_in(self) -> float | None:
        """Seconds until anything time-driven changes: the cooldown ending, or the oldest
        failure leaving the window (``failures_in_window`` drops). None when nothing will."""
        now = self._clock.monotonic()
        self._prune()
        delays = [self._failures[0] + self.failure_window - now] if self._failures else []
        if self.state is BreakerState.OPEN:
            delays.append(self._open_until_mono - now)
        return max(0.0, min(delays)) if delays else None

    # -- acting ----------------------------------------------------------------------------

    def try_acquire_trial(self) -> bool:
        """CLOSED: True. OPEN: False. HALF_OPEN: True for exactly one caller until it reports
        (or until ``trial_timeout`` passes without a report)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self.trial_outstanding:
            return False
        self._trial_started = self._clock.monotonic()
        return True

    def record_success(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._open = False
            self._failures.clear()
            self._trial_started = None
            self.opened_reason = ""
        # CLOSED: the window is a failure rate, a success does not erase it.
        # OPEN: a straggler's success does not close early; the trial decides.

    def record_failure(self, retry_after: float = 0.0, cause: str = "failure") -> None:
        retry_after = max(0.0, retry_after)
        now = self._clock.monotonic()
        state = self.state
        self._failures.append(now)
        self._prune()
        hint = f", Retry-After {_secs(retry_after)}" if retry_after else ""
        if state is BreakerState.HALF_OPEN:
            self._cool(max(self.cooldown_time, retry_after), f"trial failed (last: {cause}{hint})")
        elif state is BreakerState.CLOSED and len(self._failures) >= self.allowed_fails:
            reason = (
                f"{len(self._failures)} failures in {_secs(self.failure_window)} "
                f"(last: {cause}{hint})"
            )
            self._cool(max(self.cooldown_time, retry_after), reason)
        elif retry_after:
            # Below the threshold, or already open: the provider named a time to come back.
            self._cool(retry_after, f"rate limited: Retry-After {_secs(retry_after)}")

    # -- internals -------------------------------------------------------------------------

    def _cool(self, duration: float, reason: str) -> None:
        now_mono = self._clock.monotonic()
        until_mono = now_mono + duration
        was_open = self.state is BreakerState.OPEN
        if was_open and until_mono <= self._open_until_mono:
            return  # never shorten; keep the reason of the longer cooldown
        self._open = True
        self._open_until_mono = max(self._open_until_mono, until_mono)
        self._cooldown_until = max(self._cooldown_until, self._clock.time() + duration)
        self._trial_started = None
        self.opened_reason = reason

    def _prune(self) -> None:
        horizon = self._clock.monotonic() - self.failure_window
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()
