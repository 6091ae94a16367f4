"""The Registry gRPC edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from registry_svc.book import UnknownBackendError
from registry_svc.service import HealthChange, Registry
from uniwizard.config_types import BackendConfig
from uniwizard.convert import backend_to_pb, health_to_pb, outcome_from_pb
from uniwizard.types import BackendHealth
from uniwizard.v1 import common_pb2, registry_pb2, registry_pb2_grpc


def status_pb(cfg: BackendConfig, health: BackendHealth) -> common_pb2.BackendStatus:
    return common_pb2.BackendStatus(backend=backend_to_pb(cfg), health=health_to_pb(health))


def event_pb(change: HealthChange) -> registry_pb2.HealthEvent:
    return registry_pb2.HealthEvent(
        snapshot=change.snapshot,
        backends=[status_pb(c, h) for c, h in change.backends],
        removed=list(change.removed),
    )


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    def __init__(self, registry: Registry, shutting_down: asyncio.Event):
        self.registry = registry
        self.shutting_down = shutting_down

    async def _known(self, key: str, context: grpc.aio.ServicerContext) -> None:
        if key not in self.registry.book.configs():
            known = ", ".join(self.registry.book.configs())
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"unknown backend {key!r} (known: {known})"
            )

    async def ListBackends(self, request, context):  # type: ignore[no-untyped-def]
        return registry_pb2.ListBackendsResponse(
            backends=[status_pb(c, h) for c, h in self.registry.statuses()],
            config_path=self.registry.config.path,
        )

    async def GetBackend(self, request, context):  # type: ignore[no-untyped-def]
        await self._known(request.key, context)
        return status_pb(*self.registry.status(request.key))

    async def ReportOutcome(self, request, context):  # type: ignore[no-untyped-def]
        outcome = outcome_from_pb(request.outcome)
        if outcome is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "outcome is required")
        await self._known(request.backend, context)
        self.registry.report(
            request.backend, outcome, max(0.0, request.retry_after_s), request.detail[:200]
        )
        return registry_pb2.ReportOutcomeResponse(
            health=health_to_pb(self.registry.book.get(request.backend))
        )

    async def ReportOutcomes(self, request, context):  # type: ignore[no-untyped-def]
        known = self.registry.book.configs()
        applied = 0
        for r in request.reports:
            outcome = outcome_from_pb(r.outcome)
            if outcome is None or r.backend not in known:
                continue
            self.registry.report(r.backend, outcome, max(0.0, r.retry_after_s), r.detail[:200])
            applied += 1
        return registry_pb2.ReportOutcomesResponse(applied=applied)

    async def SetEnabled(self, request, context):  # type: ignore[no-untyped-def]
        await self._known(request.key, context)
        try:
            self.registry.set_enabled(
                request.key, request.enabled, request.by[:100], request.reason[:500]
            )
        except (OSError, UnknownBackendError) as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"could not save operator state: {exc}")
        return status_pb(*self.registry.status(request.key))

    async def AcquireTrial(self, request, context):  # type: ignore[no-untyped-def]
        await self._known(request.key, context)
        granted = self.registry.acquire_trial(request.key)
        return registry_pb2.AcquireTrialResponse(
            granted=granted, health=health_to_pb(self.registry.book.get(request.key))
        )

    async def WatchHealth(self, request, context) -> AsyncIterator[registry_pb2.HealthEvent]:  # type: ignore[no-untyped-def]
        queue = self.registry.watch()
        stop = asyncio.ensure_future(self.shutting_down.wait())
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

    async def Reload(self, request, context):  # type: ignore[no-untyped-def]
        result = self.registry.reload()
        if result.ok:
            self._on_reload()
        return registry_pb2.ReloadResponse(
            ok=result.ok,
            error=result.error,
            added=list(result.added),
            changed=list(result.changed),
            removed=list(result.removed),
        )

    def _on_reload(self) -> None:
        """Replaced by the server to restart probes after a reload."""
