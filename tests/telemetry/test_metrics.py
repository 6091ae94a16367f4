"""GenAI client metrics, cost and backend health, read back from in-memory metric readers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader

from tests.stack import running_stack, task
from uniwizard import metrics


@pytest.fixture
def readers() -> Iterator[dict[str, MetricReader]]:
    readers = metrics.use_reader(InMemoryMetricReader)
    try:
        yield readers
    finally:
        metrics.use_reader(None)


def points(reader: MetricReader, name: str) -> list[Any]:
    assert isinstance(reader, InMemoryMetricReader)
    data = reader.get_metrics_data()
    assert data is not None
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


async def test_tokens_duration_cost_and_health_are_measured(
    tmp_path: Path, readers: dict[str, MetricReader]
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.sim.add_fault("gpt", {"kind": "status", "status": 503}, times=1)
        result = await stack.dispatch(task("Who was the first emperor of Rome?"))
        await stack.set_enabled("kimi", False)
        caller, registry = readers["caller_svc"], readers["registry_svc"]
        tokens = {
            p.attributes["gen_ai.token.type"]: p.sum
            for p in points(caller, "gen_ai.client.token.usage")
        }
        assert tokens == {"input": result.usage.input_tokens, "output": result.usage.output_tokens}
        durations = points(caller, "gen_ai.client.operation.duration")
        assert sum(p.count for p in durations) == 2
        assert {p.attributes.get("error.type") for p in durations} == {"overloaded", None}
        cost = points(caller, "uniwizard.cost")
        assert sum(p.value for p in cost) == pytest.approx(result.cost_usd)
        health = {
            p.attributes["uniwizard.backend"]: (p.value, p.attributes["uniwizard.health.state"])
            for p in points(registry, "uniwizard.backend.routable")
        }
        assert health["kimi"] == (0, "disabled")
        assert health["claude"][0] == 1
