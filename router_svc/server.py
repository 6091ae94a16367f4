"""router_svc: the Router service, wired at construction, and ``python -m router_svc``."""

from __future__ import annotations

import argparse
import logging
import os

import grpc

from router_svc.dispatch import RouterCore
from router_svc.fallback import FallbackPolicy
from router_svc.health_view import HealthView
from router_svc.links import GrpcCallerLink, GrpcRegistryLink
from router_svc.policy import load_policy
from router_svc.servicer import RouterServicer
from uniwizard.config import ConfigError, load_config
from uniwizard.net import Link, address, link_channel
from uniwizard.server import Service, ServiceHost, main_entry
from uniwizard.v1 import router_pb2, router_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name


class RouterService(Service):
    """Classification, the chain and call-with-fallback behind the Router gRPC edge, following
    the registry's health stream. Runs in the current event loop."""

    def __init__(
        self,
        core: RouterCore,
        policy_path: str,
        addr: str,
        *,
        channels: tuple[grpc.aio.Channel, ...] = (),
    ) -> None:
        super().__init__(ServiceHost("router_svc", addr, [SERVICE_NAME]))
        self.core = core
        self.policy_path = policy_path
        self._channels = channels
        self.host.add_servicer(
            router_pb2_grpc.add_RouterServicer_to_server, RouterServicer(core, self.host.limits)
        )
        if core.registry is not None:
            self.watch(core.view.start(core.registry))

    @property
    def view(self) -> HealthView:
        return self.core.view

    def reload(self) -> None:
        """SIGHUP: re-read routing.yaml (backends follow the registry's health stream)."""
        try:
            self.core.policy = load_policy(self.policy_path, known_backends=self.view.backends)
            log.info("reloaded routing policy %s", self.policy_path)
        except ConfigError as exc:
            log.warning("routing policy rejected, keeping the old one: %s", exc)

    async def aclose(self) -> None:
        await self.view.stop()
        for channel in self._channels:
            await channel.close(None)


async def build_router(
    config_path: str,
    policy_path: str,
    addr: str,
    *,
    registry: Link,
    caller: Link,
    content_policy: str = "propagate",
) -> RouterService:
    """``registry`` and ``caller``: an address each, or an in-process channel to a component in
    this process; the links work the same over either."""
    config = load_config(config_path)  # fail fast; also the bootstrap view before the registry
    policy = load_policy(policy_path, known_backends=config.backends)  # fail fast too
    registry_channel = link_channel(registry, "router_svc", service="registry")
    caller_channel = link_channel(caller, "router_svc", service="caller")  # round robin
    core = RouterCore(
        policy,
        HealthView(config.backends),
        GrpcCallerLink(caller_channel),
        GrpcRegistryLink(registry_channel),
        FallbackPolicy(content_policy=content_policy),
    )
    return RouterService(core, policy_path, addr, channels=(registry_channel, caller_channel))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m router_svc", description="Uniwizard router")
    p.add_argument("--config", default=os.environ.get("UNIWIZARD_CONFIG", "configs/backends.yaml"))
    p.add_argument("--policy", default=os.environ.get("UNIWIZARD_POLICY", "configs/routing.yaml"))
    p.add_argument("--address", default=address("router"))
    p.add_argument("--registry", default=address("registry"))
    p.add_argument(
        "--caller",
        default=address("caller"),
        help="the callers: host:port (a name may resolve to every replica), dns:///host:port, "
        "or a list ADDR:PORT,ADDR:PORT; calls go round robin to those serving",
    )
    p.add_argument(
        "--content-policy",
        choices=["propagate", "fallback"],
        default=os.environ.get("UNIWIZARD_CONTENT_POLICY", "propagate"),
        help="on a provider content-policy rejection: stop (default) or fall over",
    )
    args = p.parse_args(argv)
    return main_entry(
        lambda: build_router(
            args.config,
            args.policy,
            args.address,
            registry=args.registry,
            caller=args.caller,
            content_policy=args.content_policy,
        ),
        "router_svc",
    )
