"""caller_svc: the Caller service, wired at construction, and ``python -m caller_svc``."""

from __future__ import annotations

import argparse
import logging
import os
import socket

from caller_svc.core import CallerCore
from caller_svc.identity import IdentityConfigError, IdentityGuard
from caller_svc.ledger import LedgerUnavailable, default_caller_id, open_ledger, redact
from caller_svc.refusal import RefusalDetector
from caller_svc.reporter import RegistryReporter
from caller_svc.servicer import CallerServicer
from caller_svc.spend import SpendWatcher
from uniwizard.config import ConfigError, load_config
from uniwizard.config_types import Config
from uniwizard.net import Link, address, data_dir, link_channel
from uniwizard.server import Service, ServiceHost, StartupError, main_entry
from uniwizard.v1 import caller_pb2, caller_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = caller_pb2.DESCRIPTOR.services_by_name["Caller"].full_name


def default_ledger_target() -> str:
    """``UNIWIZARD_LEDGER`` (a SQLite path or a postgresql:// URL), else ledger.db in the data
    directory."""
    return os.environ.get("UNIWIZARD_LEDGER") or os.path.join(data_dir(), "ledger.db")


class CallerService(Service):
    """The attempt pipeline behind the Caller gRPC edge. Runs in the current event loop."""

    def __init__(
        self,
        config_path: str,
        core: CallerCore,
        reporter: RegistryReporter | None,
        addr: str,
        *,
        spend: SpendWatcher | None = None,
    ) -> None:
        super().__init__(ServiceHost("caller_svc", addr, [SERVICE_NAME]))
        self.config_path = config_path
        self.core = core
        self.reporter = reporter
        self.spend = spend
        servicer = CallerServicer(core, self.host.limits)
        self.host.add_servicer(caller_pb2_grpc.add_CallerServicer_to_server, servicer)
        if reporter is not None:
            self.watch(reporter.start())

    def reload(self) -> None:
        """SIGHUP: re-read backends.yaml. A file that fails validation, or whose identity
        protection cannot be loaded, leaves the running configuration in place."""
        try:
            config = load_config(self.config_path)
            guard = load_guard(config, self.config_path)
        except (ConfigError, IdentityConfigError) as exc:
            log.warning("reload rejected, keeping the running configuration: %s", exc)
            return
        changed = self.core.apply_config(config, guard)
        log.info("reloaded %s (%d backends changed or added)", self.config_path, len(changed))

    async def start(self) -> int:
        port = await super().start()
        if self.spend is not None:
            self.spend.start()  # the registry learns current spending right away
        return port

    async def aclose(self) -> None:
        if self.spend is not None:
            await self.spend.aclose()
        await self.core.aclose()
        if self.reporter is not None:
            await self.reporter.aclose()
        await self.core.ledger.aclose()  # last: every queued row is committed


def load_guard(config: Config, config_path: str) -> IdentityGuard | None:
    if config.identity is None:
        return None
    return IdentityGuard.load(config.identity, os.path.dirname(config_path))


async def build_caller(
    config_path: str,
    addr: str,
    *,
    ledger_path: str | None = None,
    registry: Link | None = None,
    caller_id: str | None = None,
) -> CallerService:
    """``registry``: where outcomes are reported (an address, or an in-process channel); None
    reports nowhere. Its ledger rows carry ``caller_id`` (default: UNIWIZARD_CALLER_ID, else
    this host and the port of ``addr``, see caller_svc.ledger.default_caller_id)."""
    config = load_config(config_path)  # fail fast
    try:
        guard = load_guard(config, config_path)
    except IdentityConfigError as exc:
        raise StartupError(f"refusing to start without identity protection: {exc}") from None
    target = ledger_path or default_ledger_target()
    try:
        caller_id = caller_id or default_caller_id(
            os.environ, socket.gethostname(), os.getpid(), addr
        )
        ledger = await open_ledger(target, caller_id=caller_id)
    except (LedgerUnavailable, ValueError) as exc:
        raise StartupError(str(exc)) from None
    log.info("cost ledger %s, rows written as caller %s", redact(target), caller_id)
    try:
        lost = await ledger.interrupted()
    except LedgerUnavailable as exc:
        await ledger.aclose()
        raise StartupError(f"cannot update the cost ledger: {exc}") from None
    if lost:
        log.warning(
            "%d ledger rows were in flight when caller %s last stopped; marked interrupted",
            lost,
            caller_id,
        )
    reporter = (
        RegistryReporter(link_channel(registry, "caller_svc", service="registry"))
        if registry
        else None
    )
    spend = SpendWatcher(ledger, reporter) if reporter is not None else None
    core = CallerCore(
        config,
        ledger,
        guard=guard,
        refusals=RefusalDetector(),
        reporter=reporter,
        on_spend=spend.spent if spend is not None else None,
    )
    return CallerService(config_path, core, reporter, addr, spend=spend)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m caller_svc", description="Uniwizard caller service")
    p.add_argument("--config", default=os.environ.get("UNIWIZARD_CONFIG", "configs/backends.yaml"))
    p.add_argument("--address", default=address("caller"))
    p.add_argument(
        "--registry",
        default=address("registry"),
        help="registry address for passive outcomes ('' to disable)",
    )
    p.add_argument(
        "--ledger",
        default=None,
        help="SQLite ledger path or postgresql:// URL (default: UNIWIZARD_LEDGER, else the data"
        " dir's ledger.db)",
    )
    args = p.parse_args(argv)
    return main_entry(
        lambda: build_caller(
            args.config, args.address, ledger_path=args.ledger, registry=args.registry or None
        ),
        "caller_svc",
    )
