"""What the caller tells the registry, never in the way of an answer: every attempt's outcome
(with its category, latency, time to first token and cost, which the registry learns from), every
rating, and snapshots of what the ledger says was spent.

Everything goes through a queue to one sender task, in ``ReportOutcomes`` batches. A failure
leaves at once (it may open a breaker). Anything else waits up to ``LINGER_S`` for company: one
RPC then carries every success, rating and spend snapshot of that moment, so under load the
registry does a handful of RPCs a second instead of one per attempt (an RPC costs the registry
about a millisecond of CPU in the gRPC runtime alone). Of spend snapshots only the newest in a
batch is sent. Every outcome is sent, successes too: the registry learns
latency, time to first token and cost from them.

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
from uniwizard.types import CallResult
from uniwizard.v1 import common_pb2, registry_pb2, registry_pb2_grpc

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
MAX_BATCH = 500
LINGER_S = 0.1

Item = registry_pb2.ReportOutcomeRequest | registry_pb2.RatingReport | registry_pb2.SpendSnapshot


class RegistryReporter:
    def __init__(self, channel: grpc.aio.Channel):
        self.channel = channel
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)
        self.queue: asyncio.Queue[Item] = asyncio.Queue(MAX_QUEUE)
        self.dropped = 0
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._urgent = asyncio.Event()  # a failure is queued: stop lingering
        self._batch: list[Item] = []  # taken from the queue, not sent yet

    def start(self) -> asyncio.Task[None]:
        """The sender task (started by the first report otherwise); it runs until aclose()."""
        if self._sender is None:
            # An empty context: a batch belongs to no single request's trace.
            self._sender = asyncio.create_task(
                self._send_loop(), name="report-outcomes", context=contextvars.Context()
            )
        return self._sender

    def report(self, result: CallResult, category: str) -> None:
        """Queue one attempt's outcome (never blocks; called in the event loop)."""
        self._put(
            registry_pb2.ReportOutcomeRequest(
                backend=result.backend,
                outcome=outcome_to_pb(result.outcome),
                retry_after_s=result.retry_after_s,
                detail=_detail(result),
                category=category,
                latency_ms=result.latency_ms,
                ttft_ms=result.ttft_ms,
                cost_usd=result.cost_usd,
                at=time.time(),
            )
        )

    def rated(self, backend: str, category: str, score: float) -> None:
        self._put(
            registry_pb2.RatingReport(
                backend=backend, category=category, score=score, at=time.time()
            )
        )

    def spent(self, as_of: float, spend: dict[str, tuple[float, float]]) -> None:
        """What the ledger says was spent per backend (today, this month) at ``as_of``."""
        self._put(
            registry_pb2.SpendSnapshot(
                as_of=as_of,
                backends=[
                    registry_pb2.BackendSpend(backend=k, today_usd=today, month_usd=month)
                    for k, (today, month) in sorted(spend.items())
                ],
            )
        )

    def _put(self, item: Item) -> None:
        if self._closed:
            return  # shutting down: what is queued was flushed already
        self.start()
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:  # the registry has been gone for long: health is stale anyway
            self.dropped += 1
            return
        if _urgent(item):
            self._urgent.set()

    async def _send_loop(self) -> None:
        while True:
            # What the sender holds is in self._batch until it was sent: a close while it
            # lingers (or sends) flushes it with the rest.
            self._batch.append(await self.queue.get())
            if not self._urgent.is_set():
                try:
                    async with asyncio.timeout(LINGER_S):
                        await self._urgent.wait()
                except TimeoutError:
                    pass
            self._urgent.clear()
            while not self.queue.empty() and len(self._batch) < MAX_BATCH:
                self._batch.append(self.queue.get_nowait())
            await self._send(self._batch)
            self._batch = []

    async def _send(self, batch: list[Item]) -> None:
        request = registry_pb2.ReportOutcomesRequest()
        for item in batch:
            if isinstance(item, registry_pb2.ReportOutcomeRequest):
                request.reports.append(item)
            elif isinstance(item, registry_pb2.RatingReport):
                request.ratings.append(item)
            else:
                request.spend.CopyFrom(item)  # the newest wins
        try:
            await self.stub.ReportOutcomes(request, timeout=2.0)
        except grpc.aio.AioRpcError as exc:  # the registry being down must not fail calls
            log.debug("report to registry failed: %s", exc.code().name)

    async def flush(self, timeout: float = 2.0) -> None:
        """Send what is queued (on shutdown)."""
        batch, self._batch = self._batch, []
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        if batch:
            try:
                async with asyncio.timeout(timeout):
                    await self._send(batch)
            except TimeoutError:
                pass

    async def aclose(self) -> None:
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        await self.flush()
        await self.channel.close(None)


def _urgent(item: Item) -> bool:
    return (
        isinstance(item, registry_pb2.ReportOutcomeRequest)
        and item.outcome != common_pb2.OUTCOME_CLASS_SUCCESS
    )


def _detail(result: CallResult) -> str:
    """A short report detail: the HTTP status and the provider's message, never prompt text."""
    status = f"{result.http_status} " if result.http_status and result.http_status != 200 else ""
    return (status + result.error_message)[:200]
