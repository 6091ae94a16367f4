"""Fixtures for the provider simulator tests: an in-process simulator on an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from uniwizard_sim.app import RunningSimulator, running_simulator


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator() as running:
        yield running
