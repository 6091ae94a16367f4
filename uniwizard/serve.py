"""``uniwizard serve --target ...``: run components of the stack, all in one process or one each.

One binary, deployment targets (as Grafana Mimir's ``-target``): ``all`` runs registry, caller,
router and the HTTP edge in this process; ``registry``, ``caller``, ``router`` or ``edge`` (or a
comma-separated list) runs just those. Every service keeps its own gRPC server, port, health
status and reflection whatever the target (the edge its HTTP port, ``UNIWIZARD_HTTP_ADDR``), so
clients and orchestrators see no difference.

Links are chosen here, at wiring time: a component reaches another that runs in this process
through an in-process channel to its :class:`~uniwizard.inproc.LocalServer` (same stubs, same
handlers, same interceptors, no socket, no serialization), and one elsewhere over gRPC at its
address (``UNIWIZARD_<NAME>_ADDR``). The components start in dependency order (registry, caller,
router, edge) and stop in reverse as one drain (:func:`uniwizard.server.serve_until_signal`); a
crash of any of them stops them all and exits 1.

An entry point: it imports the services to run them (``tests/test_layering.py`` allows it,
as it allows ``cli.py`` and ``up.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from caller_svc.server import build_caller
from edge_svc.server import build_edge
from registry_svc.server import build_registry
from router_svc.server import build_router
from uniwizard.net import Link, address, http_address, local_channel
from uniwizard.server import (
    Component,
    Service,
    Signals,
    event_loop_runner,
    serve_until_signal,
    setup_logging,
    startup_errors,
    stop_all,
)

# Start order: each links to those before it.
COMPONENTS = ("registry", "caller", "router", "edge")


class TargetError(ValueError):
    pass


def address_variable(component: str) -> str:
    """The environment variable holding a component's address (the edge's is HTTP)."""
    return "UNIWIZARD_HTTP_ADDR" if component == "edge" else f"UNIWIZARD_{component.upper()}_ADDR"


def parse_targets(spec: str) -> tuple[str, ...]:
    """``all`` or a comma-separated list of components, in start order."""
    names = {n.strip() for n in spec.split(",") if n.strip()}
    if names == {"all"}:
        return COMPONENTS
    unknown = sorted(names - set(COMPONENTS))
    if unknown or not names:
        raise TargetError(
            f"--target {spec!r}: expected all, or one or more of {', '.join(COMPONENTS)}"
        )
    return tuple(n for n in COMPONENTS if n in names)


@dataclass(frozen=True)
class StackOptions:
    config_path: str
    policy_path: str = field(
        default_factory=lambda: os.environ.get("UNIWIZARD_POLICY", "configs/routing.yaml")
    )
    addresses: Mapping[str, str] = field(default_factory=dict)  # default: UNIWIZARD_*_ADDR
    content_policy: str = "propagate"
    probes: bool = True
    ledger_path: str | None = None
    state_path: str | None = None
    # False: components in this process still reach each other over gRPC (tests compare both).
    in_process_links: bool = True

    def address(self, component: str) -> str:
        """``addresses[component]``, else the component's variable (``address_variable``)."""
        if component == "edge":
            return self.addresses.get(component) or http_address()
        return self.addresses.get(component) or address(component)


async def start_components(targets: Sequence[str], opts: StackOptions) -> list[Component]:
    """Build and start each target in start order, each linked to those started before it; on
    a failure, stop the ones started and raise."""
    started: dict[str, Component] = {}

    def link(component: str, client: str) -> Link:
        service = started.get(component)
        if service is None:
            return opts.address(component)
        if not opts.in_process_links or not isinstance(service, Service):
            return service.target
        return local_channel(service.host.local, client)

    def where(component: str) -> str:
        service = started.get(component)
        return service.target if service is not None else opts.address(component)

    try:
        for name in COMPONENTS:
            if name not in targets:
                continue
            service = await _build(name, opts, link, where)
            await service.start()
            started[name] = service
    except BaseException:
        await stop_all(list(started.values()), grace=1.0)
        raise
    return list(started.values())


async def _build(
    name: str,
    opts: StackOptions,
    link: Callable[[str, str], Link],
    where: Callable[[str], str],
) -> Component:
    addr = opts.address(name)
    if name == "registry":
        return await build_registry(
            opts.config_path, addr, state_path=opts.state_path, probes=opts.probes
        )
    if name == "caller":
        return await build_caller(
            opts.config_path,
            addr,
            ledger_path=opts.ledger_path,
            registry=link("registry", "caller_svc"),
        )
    if name == "router":
        return await build_router(
            opts.config_path,
            opts.policy_path,
            addr,
            registry=link("registry", "router_svc"),
            caller=link("caller", "router_svc"),
            content_policy=opts.content_policy,
        )
    return await build_edge(addr, router=link("router", "edge_svc"), router_target=where("router"))


async def serve(
    targets: Sequence[str],
    opts: StackOptions,
    on_ready: Callable[[Sequence[Component]], None] | None = None,
) -> int:
    """Start the targets, then serve until SIGTERM/SIGINT (0) or a crash (1)."""
    signals = Signals()
    services = await start_components(targets, opts)
    for service in services:
        print(f"{service.name} serving on {service.target}", flush=True)
    if on_ready is not None:
        on_ready(services)
    return await serve_until_signal(services, signals)


def run_serve(
    targets: Sequence[str],
    opts: StackOptions,
    on_ready: Callable[[Sequence[Component]], None] | None = None,
) -> int:
    """Run :func:`serve` on the event loop; a component that cannot start is one line, exit 2."""
    setup_logging("uniwizard")
    try:
        return event_loop_runner()(serve(targets, opts, on_ready))
    except startup_errors() as exc:
        print(f"uniwizard serve: {exc}", file=sys.stderr, flush=True)
        return 2
