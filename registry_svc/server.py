"""registry_svc: the Registry service, wired at construction, and ``python -m registry_svc``."""

from __future__ import annotations

import argparse
import asyncio
import os

from registry_svc.probes import Prober
from registry_svc.service import Registry
from registry_svc.servicer import RegistryServicer
from registry_svc.store import LearningStore, OperatorStore
from uniwizard.config import load_config
from uniwizard.net import address, data_dir
from uniwizard.server import Service, ServiceHost, main_entry
from uniwizard.v1 import registry_pb2, registry_pb2_grpc

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name


def default_state_path() -> str:
    return os.environ.get("UNIWIZARD_OPERATOR_STATE") or os.path.join(
        data_dir(), "operator-state.json"
    )


class RegistryService(Service):
    """The registry's state and probes behind its gRPC edge. Runs in the current event loop.

    With ``probe_loops`` off, nothing probes on a schedule (``prober.probe(key)`` still works).
    """

    def __init__(self, registry: Registry, prober: Prober, addr: str, *, probe_loops: bool) -> None:
        super().__init__(ServiceHost("registry_svc", addr, [SERVICE_NAME]))
        self.registry = registry
        self.prober = prober
        self.probe_loops = probe_loops
        self._draining = asyncio.Event()
        servicer = RegistryServicer(registry, self._draining, on_reload=self._restart_probes)
        self.host.add_servicer(registry_pb2_grpc.add_RegistryServicer_to_server, servicer)
        for task in registry.start():
            self.watch(task)
        self._restart_probes()

    def _restart_probes(self) -> None:
        """(Re)start one probe loop per backend: at start and after every reload."""
        if self.probe_loops:
            self.prober.start()

    def reload(self) -> None:
        if self.registry.reload().ok:
            self._restart_probes()

    def draining(self) -> None:
        self._draining.set()  # ends WatchHealth streams cleanly

    async def aclose(self) -> None:
        await self.prober.stop()
        await self.registry.stop()


async def build_registry(
    config_path: str, addr: str, *, state_path: str | None = None, probes: bool = True
) -> RegistryService:
    config = load_config(config_path)  # fail fast
    state_path = state_path or default_state_path()
    # What the registry learns lives beside the operator decisions, on the registry's volume.
    learning = LearningStore(os.path.join(os.path.dirname(state_path), "learning.json"))
    registry = Registry(config, OperatorStore(state_path), learning_store=learning)
    return RegistryService(registry, Prober(registry, os.environ), addr, probe_loops=probes)


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
