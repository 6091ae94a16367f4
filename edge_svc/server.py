"""edge_svc: the HTTP edge as a component — started, drained and stopped like the services —
and ``python -m edge_svc``.

It listens on ``UNIWIZARD_HTTP_ADDR`` (default ``127.0.0.1:50080``) with the stack's security
settings: the shared bearer token required when one is set, TLS from ``UNIWIZARD_TLS_CERT`` /
``_KEY`` (client certificates required with ``UNIWIZARD_TLS_CA``), and no non-loopback address
with neither (unless ``UNIWIZARD_ALLOW_INSECURE=1``). :func:`build_edge` takes the link to the
router: an in-process channel where the router runs in the same process (``uniwizard serve``),
else its address (``UNIWIZARD_ROUTER_ADDR``).
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl

import grpc
from aiohttp import web

from edge_svc.app import Edge
from edge_svc.config import EdgeConfig, http_address, load_edge_config
from edge_svc.tracing import SERVICE_NAME
from uniwizard import telemetry
from uniwizard.net import Link, address
from uniwizard.security import Security, check_listen, load_security
from uniwizard.server import GRACE_SECONDS, Component, main_entry
from uniwizard_client import AsyncBackendRouter

log = logging.getLogger(__name__)


class EdgeService(Component):
    """The edge's aiohttp server around an :class:`Edge`, with the lifecycle of every component
    (``uniwizard.server.Component``): it starts, drains, stops and is reloaded like the gRPC
    services, alone (``python -m edge_svc``) or beside them (``uniwizard serve``)."""

    def __init__(
        self,
        edge: Edge,
        address: str,
        *,
        owns_router: bool = False,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        super().__init__()
        self.edge = edge
        self.address = address
        self.owns_router = owns_router
        self.channel = channel  # an in-process channel made for this edge: closed on stop
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def name(self) -> str:
        return SERVICE_NAME

    @property
    def tls(self) -> bool:
        return self.edge.security.tls

    @property
    def target(self) -> str:
        host = self.address.rsplit(":", 1)[0] or "127.0.0.1"
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.target}"

    async def start(self) -> int:
        check_listen(self.address, self.edge.security)
        host, _, port = self.address.rpartition(":")
        runner = web.AppRunner(
            self.edge.app(), access_log=None, handle_signals=False, shutdown_timeout=GRACE_SECONDS
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            host.strip("[]") or "127.0.0.1",
            int(port),
            ssl_context=server_ssl_context(self.edge.security),
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(f"{self.name}: cannot listen on {self.address}: {exc.strerror}") from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    def reload(self) -> None:
        log.info("%s: SIGHUP: nothing to reload here (the router reloads the policy)", self.name)

    async def not_serving(self) -> None:
        self.edge.draining = True  # GET /health answers 503 from now on

    async def stop_serving(self, grace: float) -> None:
        """Stop accepting, let requests in flight finish within ``grace``."""
        if self._runner is not None:
            self._runner._shutdown_timeout = grace
            await self._runner.cleanup()
            self._runner = None

    async def aclose(self) -> None:
        await self.edge.close()
        if self.owns_router:
            await self.edge.router.close()
        if self.channel is not None:
            await self.channel.close(None)


def server_ssl_context(security: Security) -> ssl.SSLContext | None:
    """TLS with this process's certificate (paths from ``UNIWIZARD_TLS_CERT`` / ``_KEY``);
    with ``UNIWIZARD_TLS_CA``, client certificates signed by it are required."""
    if not security.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.environ["UNIWIZARD_TLS_CERT"], os.environ["UNIWIZARD_TLS_KEY"])
    if security.ca is not None:
        ctx.load_verify_locations(cadata=security.ca.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def build_edge(
    addr: str | None = None,
    *,
    router: Link | None = None,
    router_target: str | None = None,
    config: EdgeConfig | None = None,
    security: Security | None = None,
) -> EdgeService:
    """The edge on ``addr`` (default ``UNIWIZARD_HTTP_ADDR``) calling the router at ``router``:
    its address (default ``UNIWIZARD_ROUTER_ADDR``), or a channel made for the edge (an
    in-process one, closed when the edge stops; ``router_target`` then says where it leads).
    Raises SecurityError or LimitsError naming the setting that cannot be used."""
    config = config or load_edge_config()
    security = security or load_security()
    channel = router if isinstance(router, grpc.aio.Channel) else None
    target = router if isinstance(router, str) else router_target or address("router")
    client = AsyncBackendRouter(
        target,
        channel=channel,
        deadline=config.deadline_s,
        tracer_provider=telemetry.provider(SERVICE_NAME),
    )
    edge = Edge(client, config, security)
    return EdgeService(edge, addr or config.address, owns_router=True, channel=channel)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m edge_svc", description="Uniwizard's OpenAI-compatible HTTP edge"
    )
    p.add_argument("--address", default=http_address(), help="host:port (UNIWIZARD_HTTP_ADDR)")
    p.add_argument("--router", default=address("router"), help="the router (UNIWIZARD_ROUTER_ADDR)")
    args = p.parse_args(argv)
    return main_entry(lambda: build_edge(args.address, router=args.router), SERVICE_NAME)
