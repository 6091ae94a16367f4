"""Hypothesis profiles for the fuzz tests.

``ci`` (the default): a small, reproducible budget (derandomized, no deadline: CI machines are
noisy); the whole ``tests/fuzz`` run stays well under 40 s. ``deep``: thousands of examples per
test, for hunting bugs locally::

    HYPOTHESIS_PROFILE=deep .venv/bin/pytest tests/fuzz -q

The profiles are registered here and applied by each fuzz test (``@FUZZ``), not loaded
globally, so the budget of the other property tests in the suite is not changed.
A bug found by ``deep`` gets fixed in its module and pinned as an explicit ``@example``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=_QUIET
)
settings.register_profile("deep", max_examples=2000, deadline=None, suppress_health_check=_QUIET)
