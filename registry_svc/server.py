"""registry_svc: serve()."""

from __future__ import annotations

import argparse
import asyncio
import os

from registry_svc.probes import Prober
from registry_svc.service import Registry
from registry_svc.servicer import RegistryServicer
from registry_svc.store import OperatorStore
from uniwizard.config import load_config
from uniwizard.net import address, data_dir
from uniwizard.server import ServiceHost, main_entry
from uniwizard.v1 import registry_pb2, registry_pb2_grpc

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name


def default_state_path() -> str:
    return os.environ.get("UNIWIZARD_OPERATOR_STATE") or os.path.join(
        data_dir(), "operator-state.json"
    )


async def build_registry(
    config_path: str, addr: str, *, state_path: str | None = None, probes: bool = True
) -> ServiceHost:
    config = load_config(config_path)  # fail fast
    registry = Registry(config, OperatorStore(state_path or default_state_path()))
    prober = Prober(registry, os.environ)
    shutting_down = asyncio.Event()
    servicer = RegistryServicer(registry, shutting_down)
    host = ServiceHost("registry_svc", addr, [SERVICE_NAME])
    registry_pb2_grpc.add_RegistryServicer_to_server(servicer, host.server)
    host.registry = registry  # type: ignore[attr-defined]  # for in-process tests
    host.prober = prober  # type: ignore[attr-defined]
    registry.start()
    if probes:
        prober.start()
        servicer._on_reload = prober.start  # type: ignore[method-assign]

    def on_sighup() -> None:
        if registry.reload().ok and probes:
            prober.start()

    host.on_reload.append(on_sighup)

    host.on_shutdown.append(shutting_down.set)

    async def close() -> None:
        await prober.stop()
        await registry.stop()

    host.cleanups.append(close)
    return host


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m registry_svc", description="Uniwizard registry")
    p.add_argument("--config", default=os.environ.get("UNIWIZARD_CONFIG", "configs/backends.yaml"))
    p.add_argument("--address", default=address("registry"))
    p.add_argument("--state", default=None, help="operator state file (default: data dir)")
    p.add_argument("--no-probes", action="store_true", help="disable active probes")
    args = p.parse_args(argv)
    return main_entry(
        lambda: build_registry(
            args.config, args.address, state_path=args.state, probes=not args.no_probes
        ),
        "registry_svc",
    )
