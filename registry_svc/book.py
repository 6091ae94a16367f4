"""The registry's truth about backend health: probes + passive outcomes + operator control.

Pure logic, no I/O, time from a :class:`Clock`; not thread-safe (one asyncio loop owns it).
Every mutating call returns the :class:`BackendHealth` values that *changed*, ready to push on
``WatchHealth``.

What "changed" means: any field other than ``last_probe_at``, ``last_probe_latency_ms`` and
``changed_at`` differs from the last published value, so probing a stable backend does not spam
the stream (the new latency is still visible in :meth:`snapshot`/:meth:`get`). A call reports
every backend whose published health changed, which may include a time-driven change elsewhere
(a cooldown that ended, a failure that left the window) that :meth:`tick` has not published
yet; :meth:`next_wakeup_in` says when the next such change is due. :meth:`snapshot` and
:meth:`get` are reads: they show the current truth but do not publish. ``cooldown_until`` is
reported only in COOLING_DOWN (0 otherwise).

State precedence: DISABLED > DOWN (missing key, auth) > COOLING_DOWN (breaker open) > HALF_OPEN
> HEALTHY (a success or an ok probe seen) > UNKNOWN.

Decisions:

* A probe success while the breaker is OPEN does not close it early: the cooldown is the
  provider's or our promise to back off, and the half-open trial decides. A probe success while
  HALF_OPEN *is* a trial success and closes the breaker (this is how an idle backend recovers).
  Probe successes clear an auth DOWN.
* ``auth`` (401/403) does not feed the breaker: it latches DOWN until an ok probe, a successful
  call or a reload clears it.
* ``cancelled`` (and ``no_backend``, which is not about a backend) change nothing at all, not
  even ``last_outcome``; a cancelled probe is ignored the same way. The other non-provider
  outcomes (bad_request, context_window, content_policy, refusal, identity_leak) only update
  ``last_outcome``.
* A half-open trial that never reports is re-granted after ``max(timeout, cooldown_time)`` of
  the backend: a real trial cannot legitimately take longer than the whole-call timeout.
* A Retry-After on any counted failure (429, or a 503 that sent one) is honoured; see
  :mod:`registry_svc.breaker`.
* Backends with a missing key are DOWN and never probed. Disabled backends are still probed
  (probes are free model listings), so enabling returns to a truthful state.
* Operator state is kept per key apart from the configuration: it survives reloads, including
  a key that is removed and later re-added. An explicit enable is remembered only when the
  configuration says ``enabled: false``. When a reload changes a backend's ``enabled`` field,
  that edit is the newer decision and the operator override for the key is dropped.
* Reports (probe, outcome) for unknown keys are ignored (they race with reloads); reads and
  operator calls on unknown keys raise :class:`UnknownBackendError`.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from registry_svc.breaker import BreakerState, CircuitBreaker
from registry_svc.clock import Clock
from registry_svc.store import OperatorState
from uniwizard.config_types import BackendConfig
from uniwizard.types import PROVIDER_FAILURES, BackendHealth, HealthState, Outcome

_IGNORED = frozenset({Outcome.CANCELLED, Outcome.NO_BACKEND})
_CONFIG_DISABLED = OperatorState(
    disabled=True, by="config", reason="enabled: false in the configuration", at=0.0
)


class UnknownBackendError(KeyError):
    """No backend with this key is configured."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    changes: list[BackendHealth]  # health that changed, new backends included
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # config differs: fresh breaker and health
    removed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Entry:
    config: BackendConfig
    breaker: CircuitBreaker
    missing_key: str | None = None  # name of the unset environment variable
    auth_down: str | None = None  # reason while an auth failure latches DOWN
    seen_ok: bool = False
    last_probe_ok: bool | None = None
    last_probe_latency_ms: float = 0.0
    last_probe_at: float = 0.0
    last_outcome: str = ""


def missing_key_env(config: BackendConfig, env: Mapping[str, str]) -> str | None:
    """The name of the backend's key variable when it is set in config but absent/empty."""
    name = config.api_key_env
    if name and not env.get(name, "").strip():
        return name
    return None


_TIMING = frozenset({"last_probe_at", "last_probe_latency_ms", "changed_at"})
# What a change is made of: every field but the timings (a probe that only took another 3 ms,
# or the stamp itself, is not news). One C-level getter: this runs for every reported outcome.
_significant = operator.attrgetter(
    *(f.name for f in dataclasses.fields(BackendHealth) if f.name not in _TIMING)
)


class HealthBook:
    def __init__(
        self,
        configs: Mapping[str, BackendConfig],
        clock: Clock,
        env: Mapping[str, str],
        operator_state: Mapping[str, OperatorState] | None = None,
    ) -> None:
        self._clock = clock
        self._operator: dict[str, OperatorState] = dict(operator_state or {})
        self._entries = {key: self._new_entry(cfg, env) for key, cfg in configs.items()}
        self._published: dict[str, BackendHealth] = {}
        self._due = math.inf  # monotonic time of the next time-driven change
        self._publish()

    # -- reads -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, BackendHealth]:
        return {key: self._current(key) for key in self._entries}

    def get(self, key: str) -> BackendHealth:
        self._entry(key)
        return self._current(key)

    def config(self, key: str) -> BackendConfig:
        return self._entry(key).config

    def configs(self) -> dict[str, BackendConfig]:
        return {key: e.config for key, e in self._entries.items()}

    def breaker(self, key: str) -> CircuitBreaker:
        return self._entry(key).breaker

    def needs_probe(self, key: str) -> bool:
        return self._entry(key).missing_key is None

    def probe_targets(self) -> list[BackendConfig]:
        return [e.config for e in self._entries.values() if e.missing_key is None]

    def operator_state(self) -> dict[str, OperatorState]:
        """Every operator override, including keys not configured right now (to persist)."""
        return dict(self._operator)

    def next_wakeup_in(self) -> float | None:
        """Seconds until the next time-driven change (a cooldown ending, a failure leaving the
        window); the server's timer calls :meth:`tick` then. None: nothing to wait for."""
        delays = [
            d for e in self._entries.values() if (d := e.breaker.next_change_in()) is not None
        ]
        return min(delays) if delays else None

    # -- reports ---------------------------------------------------------------------------

    def record_probe(
        self,
        key: str,
        ok: bool,
        latency_ms: float,
        detail: str = "",
        outcome: Outcome | None = None,
        retry_after_s: float = 0.0,
    ) -> list[BackendHealth]:
        """An active probe's result. ``detail`` is short, e.g. "401" or "connection refused"."""
        e = self._entries.get(key)
        if e is None or (not ok and outcome is Outcome.CANCELLED):
            return self._publish(())  # nothing new here; only what time changed
        e.last_probe_ok = ok
        e.last_probe_latency_ms = latency_ms
        e.last_probe_at = self._clock.time()
        if ok:
            e.seen_ok = True
            e.auth_down = None
            e.breaker.record_success()
        elif outcome is Outcome.AUTH:
            e.auth_down = _auth_reason(detail)
        else:
            cause = detail or (outcome.value if outcome else "probe failed")
            e.breaker.record_failure(retry_after_s, cause=cause)
        return self._publish((key,))

    def record_outcome(
        self, key: str, outcome: Outcome, retry_after_s: float = 0.0, detail: str = ""
    ) -> list[BackendHealth]:
        """A passive outcome reported by the caller for one attempt."""
        e = self._entries.get(key)
        if e is None or outcome in _IGNORED:
            return self._publish(())  # nothing new here; only what time changed
        e.last_outcome = outcome.value
        if outcome is Outcome.SUCCESS:
            e.seen_ok = True
            e.auth_down = None
            e.breaker.record_success()
        elif outcome is Outcome.AUTH:
            e.auth_down = _auth_reason(detail)
        elif outcome in PROVIDER_FAILURES:
            e.breaker.record_failure(retry_after_s, cause=outcome.value)
        return self._publish((key,))

    def try_acquire_trial(self, key: str) -> bool:
        """May one request go to this backend now? HALF_OPEN grants a single trial."""
        state = self.get(key).state
        if state is HealthState.HALF_OPEN:
            return self._entries[key].breaker.try_acquire_trial()
        return state in (HealthState.HEALTHY, HealthState.UNKNOWN)

    def tick(self) -> list[BackendHealth]:
        """Publish time-driven changes (cooldown over → HALF_OPEN); for the server's timer."""
        return self._publish()

    # -- operator --------------------------------------------------------------------------

    def disable(self, key: str, by: str, reason: str = "") -> list[BackendHealth]:
        self._entry(key)
        self._operator[key] = OperatorState(True, by or "operator", reason, self._clock.time())
        return self._publish()

    def enable(self, key: str, by: str, reason: str = "") -> list[BackendHealth]:
        e = self._entry(key)
        if e.config.enabled:
            self._operator.pop(key, None)
        else:
            self._operator[key] = OperatorState(False, by or "operator", reason, self._clock.time())
        return self._publish()

    def set_enabled(
        self, key: str, enabled: bool, by: str, reason: str = ""
    ) -> list[BackendHealth]:
        return self.enable(key, by, reason) if enabled else self.disable(key, by, reason)

    def apply_operator_state(self, states: Mapping[str, OperatorState]) -> list[BackendHealth]:
        """Replace all operator overrides (e.g. with :meth:`OperatorStore.load`'s result)."""
        self._operator = dict(states)
        return self._publish()

    # -- configuration ---------------------------------------------------------------------

    def reload(self, configs: Mapping[str, BackendConfig], env: Mapping[str, str]) -> ReloadResult:
        """Apply a validated configuration. A reload "succeeds", so it clears auth DOWN."""
        result = ReloadResult(changes=[])
        entries: dict[str, _Entry] = {}
        for key, cfg in configs.items():
            prev = self._entries.get(key)
            if prev is not None and prev.config == cfg:
                prev.auth_down = None
                prev.missing_key = missing_key_env(cfg, env)
                entries[key] = prev
                continue
            if prev is None:
                result.added.append(key)
            else:
                result.changed.append(key)
                if prev.config.enabled != cfg.enabled:
                    self._operator.pop(key, None)
            entries[key] = self._new_entry(cfg, env)
        result.removed.extend(k for k in self._entries if k not in configs)
        for key in result.removed:
            self._published.pop(key, None)
        self._entries = entries
        result.changes.extend(self._publish())
        return result

    # -- internals -------------------------------------------------------------------------

    def _new_entry(self, cfg: BackendConfig, env: Mapping[str, str]) -> _Entry:
        breaker = CircuitBreaker(
            cfg.allowed_fails,
            cfg.cooldown_time,
            cfg.failure_window,
            self._clock,
            trial_timeout=max(cfg.timeout, cfg.cooldown_time),
        )
        return _Entry(config=cfg, breaker=breaker, missing_key=missing_key_env(cfg, env))

    def _entry(self, key: str) -> _Entry:
        try:
            return self._entries[key]
        except KeyError:
            raise UnknownBackendError(key) from None

    def _disabled(self, key: str, cfg: BackendConfig) -> OperatorState | None:
        op = self._operator.get(key)
        if op is not None:
            return op if op.disabled else None
        return None if cfg.enabled else _CONFIG_DISABLED

    def _compute(self, key: str) -> BackendHealth:
        e = self._entries[key]
        breaker = e.breaker
        bstate = breaker.state
        off = self._disabled(key, e.config)
        if off is not None:
            state = HealthState.DISABLED
            reason = f"disabled by {off.by}" + (f": {off.reason}" if off.reason else "")
        elif e.missing_key is not None:
            state = HealthState.DOWN
            reason = f"API key environment variable {e.missing_key} is not set"
        elif e.auth_down is not None:
            state, reason = HealthState.DOWN, e.auth_down
        elif bstate is BreakerState.OPEN:
            state, reason = HealthState.COOLING_DOWN, breaker.opened_reason
        elif bstate is BreakerState.HALF_OPEN:
            state = HealthState.HALF_OPEN
            reason = f"cooldown over, one trial allowed (after: {breaker.opened_reason})"
        else:
            state = HealthState.HEALTHY if e.seen_ok else HealthState.UNKNOWN
            reason = ""
        return BackendHealth(
            key=key,
            state=state,
            reason=reason,
            cooldown_until=breaker.cooldown_until if state is HealthState.COOLING_DOWN else 0.0,
            disabled_by=off.by if off else "",
            disabled_reason=off.reason if off else "",
            last_probe_latency_ms=e.last_probe_latency_ms,
            last_probe_ok=e.last_probe_ok,
            last_probe_at=e.last_probe_at,
            last_outcome=e.last_outcome,
            failures_in_window=breaker.failures_in_window,
        )

    def _current(self, key: str) -> BackendHealth:
        """The current health, stamped with when its significant content last changed."""
        health = self._compute(key)
        published = self._published.get(key)
        if published is not None and _significant(published) == _significant(health):
            return dataclasses.replace(health, changed_at=published.changed_at)
        return dataclasses.replace(health, changed_at=self._clock.time())

    def _publish(self, keys: Iterable[str] | None = None) -> list[BackendHealth]:
        """Recompute ``keys`` (default: every backend) and return what changed.

        A report about one backend changes only that one, so only it is recomputed (this runs
        for every reported outcome) unless a time-driven change is due somewhere, which then
        goes out with it rather than waiting for :meth:`tick`."""
        now = self._clock.monotonic()
        if keys is not None and now >= self._due:
            keys = None
        if keys is None:
            self._due = math.inf  # recomputed below from every backend
        changes: list[BackendHealth] = []
        for key in self._entries if keys is None else keys:
            before = self._published.get(key)
            health = self._current(key)
            if before is None or _significant(before) != _significant(health):
                changes.append(health)
            self._published[key] = health
            wait = self._entries[key].breaker.next_change_in()
            if wait is not None:
                self._due = min(self._due, now + wait)
        return changes


def _auth_reason(detail: str) -> str:
    return f"authentication failed ({detail})" if detail else "authentication failed"
