"""The caller's reports to the registry, over a real gRPC server: failures leave at once,
everything else lingers a moment so one RPC carries many."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from caller_svc import reporter as reporter_mod
from caller_svc.reporter import RegistryReporter
from uniwizard.types import CallResult, Outcome
from uniwizard.v1 import registry_pb2, registry_pb2_grpc


class FakeRegistry(registry_pb2_grpc.RegistryServicer):
    def __init__(self) -> None:
        self.batches: list[registry_pb2.ReportOutcomesRequest] = []
        self.arrived = asyncio.Event()

    async def ReportOutcomes(
        self, request: registry_pb2.ReportOutcomesRequest, context: object
    ) -> registry_pb2.ReportOutcomesResponse:
        self.batches.append(request)
        self.arrived.set()
        return registry_pb2.ReportOutcomesResponse(applied=len(request.reports))


@pytest.fixture
async def registry() -> AsyncIterator[tuple[FakeRegistry, RegistryReporter]]:
    server = grpc.aio.server()
    fake = FakeRegistry()
    registry_pb2_grpc.add_RegistryServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    reporter = RegistryReporter(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
    try:
        yield fake, reporter
    finally:
        await reporter.aclose()
        await server.stop(None)


def result(outcome: Outcome, backend: str = "gpt") -> CallResult:
    return CallResult(
        backend=backend, model="gpt-4o", outcome=outcome, latency_ms=12.0, cost_usd=0.001
    )


async def test_successes_ratings_and_spend_of_a_moment_go_in_one_rpc(
    registry: tuple[FakeRegistry, RegistryReporter],
) -> None:
    fake, reporter = registry
    for _ in range(20):
        reporter.report(result(Outcome.SUCCESS), "knowledge")
    reporter.rated("gpt", "knowledge", 0.8)
    reporter.spent(1.0, {"gpt": (0.1, 0.2)})
    reporter.spent(2.0, {"gpt": (0.3, 0.4)})
    await asyncio.wait_for(fake.arrived.wait(), 5)
    await asyncio.sleep(reporter_mod.LINGER_S * 2)
    assert len(fake.batches) == 1
    [batch] = fake.batches
    assert len(batch.reports) == 20 and len(batch.ratings) == 1
    assert batch.reports[0].latency_ms == 12.0 and batch.reports[0].category == "knowledge"
    assert batch.spend.as_of == 2.0  # the newest snapshot only


async def test_a_failure_does_not_wait(
    registry: tuple[FakeRegistry, RegistryReporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, reporter = registry
    monkeypatch.setattr(reporter_mod, "LINGER_S", 30.0)
    reporter.report(result(Outcome.SUCCESS), "knowledge")
    await asyncio.sleep(0.05)
    reporter.report(result(Outcome.RATE_LIMITED), "knowledge")  # cuts the linger short
    await asyncio.wait_for(fake.arrived.wait(), 5)
    outcomes = [r.outcome for b in fake.batches for r in b.reports]
    assert len(outcomes) == 2


async def test_what_is_queued_is_flushed_on_close(
    registry: tuple[FakeRegistry, RegistryReporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, reporter = registry
    monkeypatch.setattr(reporter_mod, "LINGER_S", 30.0)
    for _ in range(3):
        reporter.report(result(Outcome.SUCCESS), "quick")
    await asyncio.sleep(0.05)
    await reporter.aclose()
    assert sum(len(b.reports) for b in fake.batches) == 3
