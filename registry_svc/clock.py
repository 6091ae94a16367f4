"""Time sources. Every time-dependent piece of the registry takes a :class:`Clock`.

``time()`` is wall-clock epoch seconds (what ``BackendHealth`` reports); ``monotonic()`` measures
durations (windows, cooldowns, trial timeouts) so a wall-clock jump cannot shorten or stretch
a cooldown. Tests use :class:`FakeClock` and never sleep.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Unix epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (arbitrary origin)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A manual clock: both readings move only on :meth:`advance`.

    The monotonic origin differs from the wall-clock one on purpose, so code that mixes the
    two readings fails in tests.
    """

    MONOTONIC_ORIGIN = 1_000.0

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._start = start
        self._elapsed = 0.0

    def time(self) -> float:
        return self._start + self._elapsed

    def monotonic(self) -> float:
        return self.MONOTONIC_ORIGIN + self._elapsed

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._elapsed += seconds
