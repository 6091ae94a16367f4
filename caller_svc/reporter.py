"""Passive outcomes from the caller to the registry, never in the way of an answer.

Reports go through a queue to one sender task. At low load each report leaves at once; under
load, reports that arrive while a send is in flight go together in the next ``ReportOutcomes``
batch, so the registry does one RPC per batch instead of one per attempt.

A success that follows a reported success of the same backend tells the registry nothing new
(it only closes a half-open breaker or clears an auth failure, and the report before it would
have been that failure), so it is sent at most every ``SUCCESS_REFRESH_S`` seconds. Failures are
always sent.

The channel is a network channel to the registry, or an in-process one when the registry runs in
the same process (``uniwizard serve --target all``); the reporter cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

import grpc

from uniwizard.convert import outcome_to_pb
from uniwizard.types import Outcome
from uniwizard.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
MAX_BATCH = 500
SUCCESS_REFRESH_S = 5.0


class RegistryReporter:
    def __init__(self, channel: grpc.aio.Channel):
        self.channel = channel
        self.stub = registry_pb2_grpc.RegistryStub(channel)
        self.queue: asyncio.Queue[registry_pb2.ReportOutcomeRequest] = asyncio.Queue(MAX_QUEUE)
        self.dropped = 0
        self.suppressed = 0
        self._last_success: dict[str, float] = {}  # backend -> when its last success was sent
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        """The sender task (started by the first report otherwise); it runs until aclose()."""
        if self._sender is None:
            # An empty context: a batch belongs to no single request's trace.
            self._sender = asyncio.create_task(
                self._send_loop(), name="report-outcomes", context=contextvars.Context()
            )
        return self._sender

    def report(self, backend: str, outcome: Outcome, retry_after_s: float, detail: str) -> None:
        """Queue one outcome (never blocks; called in the event loop)."""
        if self._sender is None:
            self.start()
        if outcome is Outcome.SUCCESS:
            now = time.monotonic()
            if now - self._last_success.get(backend, -1e9) < SUCCESS_REFRESH_S:
                self.suppressed += 1
                return
            self._last_success[backend] = now
        else:
            self._last_success.pop(backend, None)  # the next success is news again
        report = registry_pb2.ReportOutcomeRequest(
            backend=backend,
            outcome=outcome_to_pb(outcome),
            retry_after_s=retry_after_s,
            detail=detail,
        )
        try:
            self.queue.put_nowait(report)
        except asyncio.QueueFull:  # the registry has been gone for long: health is stale anyway
            self.dropped += 1

    async def _send_loop(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self.queue.get_nowait())
            await self._send(batch)

    async def _send(self, batch: list[registry_pb2.ReportOutcomeRequest]) -> None:
        try:
            await self.stub.ReportOutcomes(
                registry_pb2.ReportOutcomesRequest(reports=batch), timeout=2.0
            )
        except grpc.aio.AioRpcError as exc:  # the registry being down must not fail calls
            log.debug("report to registry failed: %s", exc.code().name)

    async def flush(self, timeout: float = 2.0) -> None:
        """Send what is queued (on shutdown)."""
        batch = []
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        if batch:
            try:
                async with asyncio.timeout(timeout):
                    await self._send(batch)
            except TimeoutError:
                pass

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        await self.flush()
        await self.channel.close(None)
