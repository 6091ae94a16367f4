from __future__ import annotations

import pytest

from registry_svc.clock import FakeClock
from uniwizard.config_types import BackendConfig


def make_config(key: str = "local", **overrides: object) -> BackendConfig:
    values: dict[str, object] = {
        "key": key,
        "provider": "openai_compatible",
        "url": "http://localhost:8081/v1",
        "model": "m",
        "allowed_fails": 3,
        "cooldown_time": 30.0,
        "failure_window": 60.0,
        "timeout": 10.0,
    }
    values.update(overrides)
    return BackendConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
