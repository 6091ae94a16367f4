"""caller_svc: serve()."""

from __future__ import annotations

import argparse
import logging
import os

from caller_svc.core import CallerCore
from caller_svc.identity import IdentityConfigError, IdentityGuard
from caller_svc.ledger import LedgerUnavailable, open_ledger
from caller_svc.refusal import RefusalDetector
from caller_svc.reporter import RegistryReporter
from caller_svc.servicer import CallerServicer
from uniwizard.config import ConfigError, load_config
from uniwizard.net import address, data_dir
from uniwizard.server import ServiceHost, StartupError, main_entry
from uniwizard.v1 import caller_pb2, caller_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = caller_pb2.DESCRIPTOR.services_by_name["Caller"].full_name


def default_ledger_path() -> str:
    return os.environ.get("UNIWIZARD_LEDGER") or os.path.join(data_dir(), "ledger.db")


async def build_caller(
    config_path: str,
    addr: str,
    *,
    ledger_path: str | None = None,
    registry: str | None = None,
) -> ServiceHost:
    config = load_config(config_path)  # fail fast
    guard = None
    if config.identity is not None:
        try:
            guard = IdentityGuard.load(config.identity, os.path.dirname(config_path))
        except IdentityConfigError as exc:
            raise StartupError(f"refusing to start without identity protection: {exc}") from None
    try:
        ledger = await open_ledger(ledger_path or default_ledger_path())
    except LedgerUnavailable as exc:
        raise StartupError(str(exc)) from None
    try:
        lost = await ledger.interrupted()
    except LedgerUnavailable as exc:
        await ledger.aclose()
        raise StartupError(f"cannot update the cost ledger: {exc}") from None
    if lost:
        log.warning(
            "%d ledger rows were in flight when the last caller stopped; marked interrupted", lost
        )
    reporter = RegistryReporter(registry) if registry else None
    core = CallerCore(config, ledger, guard=guard, refusals=RefusalDetector(), reporter=reporter)
    host = ServiceHost("caller_svc", addr, [SERVICE_NAME])
    host.core = core  # type: ignore[attr-defined]  # for in-process tests
    caller_pb2_grpc.add_CallerServicer_to_server(CallerServicer(core, host.limits), host.server)

    async def close() -> None:
        await core.aclose()
        if reporter is not None:
            await reporter.aclose()
        await ledger.aclose()  # after the calls and core: every queued row is committed

    host.cleanups.append(close)

    def reload_config() -> None:
        """SIGHUP: re-read backends.yaml. A file that fails validation, or whose identity
        protection cannot be loaded, leaves the running configuration in place."""
        try:
            new = load_config(config_path)
            new_guard = (
                IdentityGuard.load(new.identity, os.path.dirname(config_path))
                if new.identity is not None
                else None
            )
        except (ConfigError, IdentityConfigError) as exc:
            log.warning("reload rejected, keeping the running configuration: %s", exc)
            return
        changed = core.apply_config(new, new_guard)
        log.info("reloaded %s (%d backends changed or added)", config_path, len(changed))

    host.on_reload.append(reload_config)
    return host


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m caller_svc", description="Uniwizard caller service")
    p.add_argument("--config", default=os.environ.get("UNIWIZARD_CONFIG", "configs/backends.yaml"))
    p.add_argument("--address", default=address("caller"))
    p.add_argument(
        "--registry",
        default=address("registry"),
        help="registry address for passive outcomes ('' to disable)",
    )
    p.add_argument("--ledger", default=None, help="SQLite ledger path (default: data dir)")
    args = p.parse_args(argv)
    return main_entry(
        lambda: build_caller(
            args.config, args.address, ledger_path=args.ledger, registry=args.registry or None
        ),
        "caller_svc",
    )
