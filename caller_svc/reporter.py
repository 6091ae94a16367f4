"""Passive outcomes from the caller to the registry, never in the way of an answer."""

from __future__ import annotations

import logging

import grpc

from uniwizard.convert import outcome_to_pb
from uniwizard.net import aio_channel
from uniwizard.types import Outcome
from uniwizard.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger(__name__)


class RegistryReporter:
    def __init__(self, target: str):
        self.channel = aio_channel(target, "caller_svc")
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)

    async def __call__(
        self, backend: str, outcome: Outcome, retry_after_s: float, detail: str
    ) -> None:
        try:
            await self.stub.ReportOutcome(
                registry_pb2.ReportOutcomeRequest(
                    backend=backend,
                    outcome=outcome_to_pb(outcome),
                    retry_after_s=retry_after_s,
                    detail=detail,
                ),
                timeout=2.0,
            )
        except grpc.aio.AioRpcError as exc:  # the registry being down must not fail calls
            log.debug("report to registry failed: %s", exc.code().name)

    async def aclose(self) -> None:
        await self.channel.close()
