"""The whole stack in the test process: simulator + registry + caller + router + the HTTP edge on
port 0, each a real server on a real socket, wired by the same code as ``uniwizard serve --target
all``.

Two ways to link the components (``links``): ``"inproc"``, as one process runs them (the router
reaches the caller, both reach the registry, and the edge the router, through in-process
channels), and ``"grpc"``, as separate processes do (real channels over loopback sockets).
Tests that use :func:`running_stack` run once per way (``tests/conftest.py``); clients reach the
stack over real sockets either way.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import grpc
import yaml

from caller_svc.server import CallerService
from edge_svc.server import EdgeService
from registry_svc.server import RegistryService
from router_svc.server import RouterService
from uniwizard.config import dump_config, load_config, rewrite_urls
from uniwizard.config_types import BackendConfig, Config
from uniwizard.convert import task_to_pb
from uniwizard.net import aio_channel
from uniwizard.serve import COMPONENTS, StackOptions, start_components
from uniwizard.server import Service, stop_all
from uniwizard.types import Attachment, BlindRequest, Message, Role, Task
from uniwizard.v1 import (
    caller_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)
from uniwizard_sim.app import RunningSimulator, running_simulator
from uniwizard_sim.urls import base_url

ROOT = Path(__file__).resolve().parent.parent
BACKENDS_YAML = ROOT / "configs" / "backends.yaml"
ROUTING_YAML = ROOT / "configs" / "routing.yaml"
SIM_KEY = "sim-test-key"
Links = Literal["inproc", "grpc"]
LINKS: list[Links] = ["inproc", "grpc"]
# How running_stack links the components when a test does not say: set per test by the
# parametrized ``stack_links`` fixture of tests/conftest.py.
default_links: Links = "inproc"


def task(
    text: str,
    *,
    private: bool = False,
    attachments: tuple[Attachment, ...] = (),
    system: str = "",
    **kw: Any,
) -> Task:
    msg = Message(role=Role.USER, text=text, attachments=attachments)
    return Task(request=BlindRequest(messages=(msg,), system_prompt=system), private=private, **kw)


@dataclasses.dataclass
class Stack:
    sim: RunningSimulator
    registry: RegistryService
    caller: CallerService
    router: RouterService
    edge: EdgeService
    config: Config
    config_path: str
    tmp: Path
    links: Links = "inproc"
    channels: list[grpc.aio.Channel] = dataclasses.field(default_factory=list)

    def channel(self, host: Service) -> grpc.aio.Channel:
        """A client channel with this process's token/TLS settings, like any of our clients."""
        ch = aio_channel(host.target, "tests")
        self.channels.append(ch)
        return ch

    @property
    def router_stub(self) -> router_pb2_grpc.RouterStub:
        return router_pb2_grpc.RouterStub(self.channel(self.router))

    @property
    def registry_stub(self) -> registry_pb2_grpc.RegistryStub:
        return registry_pb2_grpc.RegistryStub(self.channel(self.registry))

    @property
    def caller_stub(self) -> caller_pb2_grpc.CallerStub:
        return caller_pb2_grpc.CallerStub(self.channel(self.caller))

    async def dispatch(
        self, t: Task, *, backend: str = "", timeout: float = 30.0
    ) -> router_pb2.DispatchResult:
        return await self.router_stub.Dispatch(
            router_pb2.DispatchRequest(task=task_to_pb(t), backend=backend), timeout=timeout
        )

    async def route(self, t: Task) -> router_pb2.RouteDecision:
        return await self.router_stub.Route(router_pb2.RouteRequest(task=task_to_pb(t)), timeout=10)

    async def set_enabled(self, key: str, enabled: bool, reason: str = "test") -> None:
        await self.registry_stub.SetEnabled(
            registry_pb2.SetEnabledRequest(key=key, enabled=enabled, by="test", reason=reason),
            timeout=5,
        )

    async def wait_router(self, predicate: Callable[[Any], bool], timeout: float = 5.0) -> None:
        await self.router.view.wait_for(predicate, timeout)


def sim_config(
    sim_url: str,
    tmp: Path,
    tweak: Callable[[BackendConfig], BackendConfig] | None = None,
    base: Path = BACKENDS_YAML,
) -> tuple[Config, str]:
    config = rewrite_urls(load_config(base), lambda b: base_url(sim_url, b.key, b.provider))
    if tweak is not None:
        config = dataclasses.replace(
            config, backends={k: tweak(b) for k, b in config.backends.items()}
        )
    path = tmp / "backends.yaml"
    path.write_text(dump_config(config))
    return load_config(path), str(path)


def v1_policy(tmp: Path) -> Path:
    """The shipped routing.yaml with adaptation off: v1's rule-based routing exactly."""
    data = yaml.safe_load(ROUTING_YAML.read_text(encoding="utf-8"))
    data["adapt"] = False
    out = tmp / "routing-v1.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


@asynccontextmanager
async def running_services(
    path: str,
    tmp: Path,
    *,
    probes: bool = False,
    content_policy: str = "propagate",
    policy: Path | None = None,
    links: Links | None = None,
) -> AsyncIterator[tuple[RegistryService, CallerService, RouterService, EdgeService]]:
    """Registry, caller, router and the HTTP edge on port 0 for the backends file ``path`` (state
    and ledger under ``tmp``), wired by ``uniwizard serve``'s own code and linked as ``links``
    says (default: ``default_links``), the router connected to the registry's health stream.
    ``policy`` is the routing policy: by default the shipped one with adaptation off (v1), so
    tests that expect a given backend do not depend on what earlier requests taught the
    registry."""
    opts = StackOptions(
        path,
        policy_path=str(policy or v1_policy(tmp)),
        addresses=dict.fromkeys(COMPONENTS, "127.0.0.1:0"),
        content_policy=content_policy,
        probes=probes,
        ledger_path=str(tmp / "ledger.db"),
        state_path=str(tmp / "ops.json"),
        in_process_links=(links or default_links) == "inproc",
    )
    services = await start_components(COMPONENTS, opts)
    registry, caller, router, edge = services
    assert isinstance(registry, RegistryService)
    assert isinstance(caller, CallerService)
    assert isinstance(router, RouterService)
    assert isinstance(edge, EdgeService)
    try:
        await router.view.wait_for(lambda v: v.connected, 5.0)
        yield registry, caller, router, edge
    finally:
        await stop_all(services, grace=1.0)


@asynccontextmanager
async def running_stack(
    tmp: Path,
    *,
    tweak: Callable[[BackendConfig], BackendConfig] | None = None,
    probes: bool = False,
    content_policy: str = "propagate",
    missing_keys: tuple[str, ...] = (),
    adapt: bool = False,
    policy: Path | None = None,
    links: Links | None = None,
) -> AsyncIterator[Stack]:
    """Start everything; API key variables are set to a placeholder the simulator accepts.

    Routing adaptation (v2) is off unless ``adapt``: tests that expect a given backend must not
    depend on what earlier requests taught the registry. ``policy`` replaces routing.yaml.
    ``links``: how the components reach each other (default: ``default_links``)."""
    saved = dict(os.environ)
    async with running_simulator() as sim:
        config, path = sim_config(sim.url, tmp, tweak)
        for b in config.backends.values():
            if b.api_key_env and b.api_key_env not in missing_keys:
                os.environ[b.api_key_env] = SIM_KEY
        for name in missing_keys:
            os.environ.pop(name, None)
        try:
            async with running_services(
                path,
                tmp,
                probes=probes,
                content_policy=content_policy,
                policy=policy or (ROUTING_YAML if adapt else None),
                links=links,
            ) as (registry, caller, router, edge):
                stack = Stack(
                    sim, registry, caller, router, edge, config, path, tmp, links or default_links
                )
                try:
                    yield stack
                finally:
                    for ch in stack.channels:
                        await ch.close()
        finally:
            os.environ.clear()
            os.environ.update(saved)
