"""The one ``serve()`` shape every service uses.

Load config and fail fast (the caller of :func:`run_service` does that), start telemetry, build the
aio server with interceptors, register the servicer plus the standard health and reflection
services, then on SIGTERM/SIGINT enter graceful shutdown: health goes NOT_SERVING, the server stops
accepting and lets in-flight calls finish within the grace period, and cleanup callbacks flush.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from uniwizard import metrics, telemetry
from uniwizard.limits import Limits, load_limits
from uniwizard.security import BearerTokenInterceptor, Security, check_listen, load_security

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0


@dataclass
class ServiceHost:
    """An aio gRPC server with health and reflection, started on an address ("host:port")."""

    name: str  # e.g. "registry_svc": the OpenTelemetry service.name
    address: str
    service_names: Sequence[str]  # full names of the services registered, for health/reflection
    server: grpc.aio.Server = field(init=False)
    health: HealthServicer = field(init=False)
    port: int = field(init=False, default=0)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Called when shutdown begins, before draining: end long-lived streams here.
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    # Called on SIGHUP: re-read configuration. Without hooks, SIGHUP is logged and ignored.
    on_reload: list[Callable[[], None]] = field(default_factory=list)

    def reload(self) -> None:
        if not self.on_reload:
            log.info("%s: SIGHUP: nothing to reload here", self.name)
        for hook in self.on_reload:
            try:
                hook()
            except Exception:  # a failed reload keeps the service running on the old state
                log.exception("%s: reload failed; keeping the running configuration", self.name)

    security: Security = field(default_factory=load_security)
    limits: Limits = field(default_factory=load_limits)

    def __post_init__(self) -> None:
        interceptors = list(telemetry.server_interceptors(self.name))
        if self.security.token:
            interceptors.insert(0, BearerTokenInterceptor(self.security.token))
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", self.limits.max_message_bytes),
                ("grpc.max_send_message_length", self.limits.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], self.server)

    async def start(self) -> int:
        check_listen(self.address, self.security)
        creds = self.security.server_credentials()
        try:
            if creds is not None:
                self.port = self.server.add_secure_port(self.address, creds)
            else:
                self.port = self.server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise OSError(f"{self.name}: cannot listen on {self.address}: {exc}") from None
        await self.server.start()
        await self.set_serving(True)
        return self.port

    @property
    def target(self) -> str:
        host = self.address.rsplit(":", 1)[0] or "127.0.0.1"
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        await self.health.enter_graceful_shutdown()
        for hook in self.on_shutdown:
            hook()
        await self.server.stop(grace)
        for cleanup in reversed(self.cleanups):
            try:
                await cleanup()
            except Exception:  # a failed flush must not hide the others
                log.exception("%s: cleanup failed", self.name)
        telemetry.shutdown()
        metrics.shutdown()


async def run_until_signal(host: ServiceHost, grace: float = GRACE_SECONDS) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; SIGHUP reloads."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, host.reload)
    await host.start()
    print(f"{host.name} serving on {host.target}", flush=True)
    await stop.wait()
    log.info("%s: shutting down (grace %.0f s)", host.name, grace)
    await host.stop(grace)
    print(f"{host.name} stopped", flush=True)


def main_entry(build: Callable[[], Awaitable[ServiceHost]], name: str) -> int:
    """Run a service from ``python -m``: config errors print one line and exit 2."""
    from uniwizard.config import ConfigError
    from uniwizard.limits import LimitsError
    from uniwizard.security import SecurityError

    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"
    )
    # Per-request HTTP logs would be noise on the hot path (and URLs are not for logs).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)

    async def _run() -> None:
        host = await build()
        await run_until_signal(host)

    try:
        _event_loop_runner()(_run())
    except (ConfigError, OSError, StartupError, SecurityError, LimitsError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    return 0


def _event_loop_runner() -> Callable[[Awaitable[None]], None]:
    """uvloop when installed (about 20% less latency and more throughput through the gRPC
    runtime, measured side by side); UNIWIZARD_UVLOOP=0 selects asyncio's own loop."""
    if os.environ.get("UNIWIZARD_UVLOOP", "1") != "0":
        try:
            import uvloop

            return uvloop.run  # type: ignore[return-value]
        except ImportError:
            pass
    return asyncio.run  # type: ignore[return-value]


class StartupError(Exception):
    """A service cannot start safely (e.g. identity protection cannot be loaded)."""
