"""The Registry gRPC edge: protobuf in, the Registry's public methods, protobuf out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc

from registry_svc.book import UnknownBackendError
from registry_svc.budgets import Spend
from registry_svc.evidence import AttemptReport, RatingReport
from registry_svc.service import HealthChange, Registry
from uniwizard.config_types import BackendConfig
from uniwizard.convert import backend_to_pb, health_to_pb, outcome_from_pb
from uniwizard.convert_learning import budget_status_to_pb, stats_to_pb
from uniwizard.types import BackendHealth, Outcome
from uniwizard.v1 import common_pb2, registry_pb2, registry_pb2_grpc

Context = grpc.aio.ServicerContext


def status_pb(cfg: BackendConfig, health: BackendHealth) -> common_pb2.BackendStatus:
    return common_pb2.BackendStatus(backend=backend_to_pb(cfg), health=health_to_pb(health))


def event_pb(change: HealthChange) -> registry_pb2.HealthEvent:
    event = registry_pb2.HealthEvent(
        snapshot=change.snapshot,
        backends=[status_pb(c, h) for c, h in change.backends],
        removed=list(change.removed),
    )
    if change.stats is not None:
        event.has_stats = True
        event.stats.extend(stats_to_pb(s) for s in change.stats)
    if change.overall_budget is not None:
        event.overall_budget.CopyFrom(budget_status_to_pb(change.overall_budget))
    return event


def attempt_report(r: registry_pb2.ReportOutcomeRequest, outcome: Outcome) -> AttemptReport:
    return AttemptReport(
        backend=r.backend,
        outcome=outcome,
        retry_after_s=max(0.0, r.retry_after_s),
        detail=r.detail[:200],
        category=r.category[:64],
        latency_ms=max(0.0, r.latency_ms),
        ttft_ms=max(0.0, r.ttft_ms),
        cost_usd=max(0.0, r.cost_usd),
        at=r.at or time.time(),
    )


def spend_from_pb(pb: registry_pb2.SpendSnapshot) -> Spend:
    return Spend(
        as_of=pb.as_of,
        today={b.backend: max(0.0, b.today_usd) for b in pb.backends},
        month={b.backend: max(0.0, b.month_usd) for b in pb.backends},
    )


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    """``draining`` ends WatchHealth streams on shutdown; ``on_reload`` runs after a successful
    Reload (the service restarts its probes)."""

    def __init__(
        self,
        registry: Registry,
        draining: asyncio.Event,
        *,
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.draining = draining
        self.on_reload = on_reload

    async def _known(self, key: str, context: Context) -> None:
        if not self.registry.knows(key):
            known = ", ".join(self.registry.keys())
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"unknown backend {key!r} (known: {known})"
            )

    async def ListBackends(
        self, request: registry_pb2.ListBackendsRequest, context: Context
    ) -> registry_pb2.ListBackendsResponse:
        return registry_pb2.ListBackendsResponse(
            backends=[status_pb(c, h) for c, h in self.registry.statuses()],
            config_path=self.registry.config.path,
            overall_budget=budget_status_to_pb(self.registry.overall_budget()),
        )

    async def GetBackend(
        self, request: registry_pb2.GetBackendRequest, context: Context
    ) -> common_pb2.BackendStatus:
        await self._known(request.key, context)
        return status_pb(*self.registry.status(request.key))

    async def ReportOutcomes(
        self, request: registry_pb2.ReportOutcomesRequest, context: Context
    ) -> registry_pb2.ReportOutcomesResponse:
        attempts = []
        for r in request.reports:
            outcome = outcome_from_pb(r.outcome)
            if outcome is None or not self.registry.knows(r.backend):
                continue  # a reload raced the report
            attempts.append(attempt_report(r, outcome))
        self.registry.report_attempts(attempts)
        self.registry.report_ratings(
            [
                RatingReport(r.backend, r.category[:64], min(max(r.score, 0.0), 1.0), r.at)
                for r in request.ratings
                if self.registry.knows(r.backend)
            ]
        )
        if request.HasField("spend"):
            self.registry.report_spend(spend_from_pb(request.spend))
        return registry_pb2.ReportOutcomesResponse(applied=len(attempts))

    async def SetEnabled(
        self, request: registry_pb2.SetEnabledRequest, context: Context
    ) -> common_pb2.BackendStatus:
        await self._known(request.key, context)
        try:
            self.registry.set_enabled(
                request.key, request.enabled, request.by[:100], request.reason[:500]
            )
        except (OSError, UnknownBackendError) as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"could not save operator state: {exc}")
        return status_pb(*self.registry.status(request.key))

    async def AcquireTrial(
        self, request: registry_pb2.AcquireTrialRequest, context: Context
    ) -> registry_pb2.AcquireTrialResponse:
        await self._known(request.key, context)
        granted = self.registry.acquire_trial(request.key)
        return registry_pb2.AcquireTrialResponse(
            granted=granted, health=health_to_pb(self.registry.health(request.key))
        )

    async def WatchHealth(
        self, request: registry_pb2.WatchHealthRequest, context: Context
    ) -> AsyncIterator[registry_pb2.HealthEvent]:
        queue = self.registry.watch()
        stop = asyncio.ensure_future(self.draining.wait())
        get: asyncio.Future[HealthChange] | None = None
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    return  # graceful shutdown ends the stream cleanly
                yield event_pb(get.result())
        finally:
            stop.cancel()
            if get is not None:
                get.cancel()  # also when the client went away mid-wait
            self.registry.unwatch(queue)

    async def Stats(
        self, request: registry_pb2.StatsRequest, context: Context
    ) -> registry_pb2.StatsResponse:
        learning = self.registry.config.learning
        return registry_pb2.StatsResponse(
            stats=[
                stats_to_pb(s)
                for s in self.registry.stats()
                if (not request.category or s.category == request.category)
                and (not request.backend or s.backend == request.backend)
            ],
            window=learning.window,
            half_life_hours=learning.half_life_hours,
        )

    async def Reload(
        self, request: registry_pb2.ReloadRequest, context: Context
    ) -> registry_pb2.ReloadResponse:
        result = self.registry.reload()
        if result.ok and self.on_reload is not None:
            self.on_reload()
        return registry_pb2.ReloadResponse(
            ok=result.ok,
            error=result.error,
            added=list(result.added),
            changed=list(result.changed),
            removed=list(result.removed),
        )
