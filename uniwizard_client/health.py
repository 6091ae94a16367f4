"""Backend health for dashboards (the Evennia Workshop script): one call, one channel."""

from __future__ import annotations

from uniwizard_client.results import BackendState, backend_state
from uniwizard_client.services import RegistryClient

__all__ = ["BackendState", "backend_state", "fetch_health", "set_enabled"]


def fetch_health(
    target: str | None = None, *, deadline: float = 10.0, token: str | None = None
) -> dict[str, BackendState]:
    """Every configured backend's live health, by key (blocking: keep it off a reactor thread).

    ``target`` defaults to ``UNIWIZARD_REGISTRY_ADDR`` or ``127.0.0.1:50051``. Raises
    ``RouterUnavailable`` when the registry cannot be reached.
    """
    with RegistryClient(target, deadline=deadline, token=token) as registry:
        return {b.key: b for b in registry.list_backends().backends}


def set_enabled(
    key: str,
    enabled: bool,
    *,
    by: str = "operator",
    reason: str = "",
    target: str | None = None,
    deadline: float = 10.0,
    token: str | None = None,
) -> BackendState:
    """Operator enable/disable of one backend (persisted by the registry)."""
    with RegistryClient(target, deadline=deadline, token=token) as registry:
        return registry.set_enabled(key, enabled, by=by, reason=reason)
