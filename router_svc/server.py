"""router_svc: serve()."""

from __future__ import annotations

import argparse
import logging
import os

from router_svc.dispatch import RouterCore
from router_svc.fallback import FallbackPolicy
from router_svc.health_view import HealthView
from router_svc.policy import load_policy
from router_svc.servicer import RouterServicer
from uniwizard.config import ConfigError, load_config
from uniwizard.net import address, aio_channel
from uniwizard.server import ServiceHost, main_entry
from uniwizard.v1 import caller_pb2_grpc, registry_pb2_grpc, router_pb2, router_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name


async def build_router(
    config_path: str,
    policy_path: str,
    addr: str,
    *,
    registry: str,
    caller: str,
    content_policy: str = "propagate",
) -> ServiceHost:
    config = load_config(config_path)  # fail fast; also the bootstrap view before the registry
    policy = load_policy(policy_path, known_backends=config.backends)  # fail fast too
    view = HealthView(config.backends)
    registry_channel = aio_channel(registry, "router_svc")
    caller_channel = aio_channel(caller, "router_svc")
    registry_stub = registry_pb2_grpc.RegistryStub(registry_channel)
    core = RouterCore(
        policy,
        view,
        caller_pb2_grpc.CallerStub(caller_channel),
        registry_stub,
        FallbackPolicy(content_policy=content_policy),
    )
    host = ServiceHost("router_svc", addr, [SERVICE_NAME])
    router_pb2_grpc.add_RouterServicer_to_server(RouterServicer(core, host.limits), host.server)
    host.core = core  # type: ignore[attr-defined]  # for in-process tests

    def reload_policy() -> None:
        """SIGHUP: re-read routing.yaml (backends follow the registry's health stream)."""
        try:
            core.policy = load_policy(policy_path, known_backends=view.backends)
            log.info("reloaded routing policy %s", policy_path)
        except ConfigError as exc:
            log.warning("routing policy rejected, keeping the old one: %s", exc)

    host.on_reload.append(reload_policy)
    view.start(registry_stub)

    async def close() -> None:
        await view.stop()
        await registry_channel.close(None)
        await caller_channel.close(None)

    host.cleanups.append(close)
    return host


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m router_svc", description="Uniwizard router")
    p.add_argument("--config", default=os.environ.get("UNIWIZARD_CONFIG", "configs/backends.yaml"))
    p.add_argument("--policy", default=os.environ.get("UNIWIZARD_POLICY", "configs/routing.yaml"))
    p.add_argument("--address", default=address("router"))
    p.add_argument("--registry", default=address("registry"))
    p.add_argument("--caller", default=address("caller"))
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
