"""The Registry gRPC edge: protobuf in, the Registry's public methods, protobuf out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc

from registry_svc.book import UnknownBackendError
from registry_svc.service import HealthChange, Registry
from uniwizard.config_types import BackendConfig
from uniwizard.convert import backend_to_pb, health_to_pb, outcome_from_pb
from uniwizard.types import BackendHealth
from uniwizard.v1 import common_pb2, registry_pb2, registry_pb2_grpc

Context = grpc.aio.ServicerContext


def status_pb(cfg: BackendConfig, health: BackendHealth) -> common_pb2.BackendStatus:
    return common_pb2.BackendStatus(backend=backend_to_pb(cfg), health=health_to_pb(health))


def event_pb(change: HealthChange) -> registry_pb2.HealthEvent:
    return registry_pb2.HealthEvent(
        snapshot=change.snapshot,
        backends=[status_pb(c, h) for c, h in change.backends],
        removed=list(change.removed),
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
        )

    async def GetBackend(
        self, request: registry_pb2.GetBackendRequest, context: Context
    ) -> common_pb2.BackendStatus:
        await self._known(request.key, context)
        return status_pb(*self.registry.status(request.key))

    async def ReportOutcomes(
        self, request: registry_pb2.ReportOutcomesRequest, context: Context
    ) -> registry_pb2.ReportOutcomesResponse:
        applied = 0
        for r in request.reports:
            outcome = outcome_from_pb(r.outcome)
            if outcome is None or not self.registry.knows(r.backend):
                continue  # a reload raced the report
            self.registry.report(r.backend, outcome, max(0.0, r.retry_after_s), r.detail[:200])
            applied += 1
        return registry_pb2.ReportOutcomesResponse(applied=applied)

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
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    return  # graceful shutdown ends the stream cleanly
                yield event_pb(get.result())
        finally:
            stop.cancel()
            self.registry.unwatch(queue)

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
