"""A small registry client: backend health for dashboards (the Evennia Workshop script)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from uniwizard.convert import health_state_from_pb, outcome_from_pb
from uniwizard.net import CHANNEL_OPTIONS, address
from uniwizard.security import load_security
from uniwizard.types import ROUTABLE_STATES, HealthState
from uniwizard.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from uniwizard_client.errors import from_rpc_error
from uniwizard_client.tracing import call_metadata


@dataclass(frozen=True, slots=True)
class BackendState:
    """One backend's configuration summary and live health, as the registry reports it."""

    key: str
    state: str  # unknown, healthy, cooling_down, half_open, down, disabled
    reason: str = ""
    provider: str = ""
    model: str = ""
    disabled_by: str = ""
    disabled_reason: str = ""
    cooldown_until: float = 0.0  # epoch seconds
    last_outcome: str = ""
    failures_in_window: int = 0
    changed_at: float = 0.0

    @property
    def routable(self) -> bool:
        return HealthState(self.state) in ROUTABLE_STATES


def backend_state(s: common_pb2.BackendStatus) -> BackendState:
    h, b = s.health, s.backend
    last = outcome_from_pb(h.last_outcome)
    return BackendState(
        key=b.key or h.key,
        state=health_state_from_pb(h.state).value,
        reason=h.reason,
        provider=b.provider,
        model=b.model,
        disabled_by=h.disabled_by,
        disabled_reason=h.disabled_reason,
        cooldown_until=h.cooldown_until,
        last_outcome=last.value if last else "",
        failures_in_window=h.failures_in_window,
        changed_at=h.changed_at,
    )


def _call(
    target: str | None, method: str, request: object, deadline: float, token: str | None
) -> object:
    target = target or address("registry")
    security = load_security()  # TLS from UNIWIZARD_TLS_*; token from the caller or the env
    token = token if token is not None else security.token
    creds = security.channel_credentials()
    channel = (
        grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
        if creds is not None
        else grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    )
    with channel:
        rpc = getattr(registry_pb2_grpc.RegistryStub(channel), method)
        try:
            return rpc(request, timeout=deadline, metadata=call_metadata(token))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, service="registry", target=target) from None


def fetch_health(
    target: str | None = None, *, deadline: float = 10.0, token: str | None = None
) -> dict[str, BackendState]:
    """Every configured backend's live health, by key (blocking: keep it off a reactor thread).

    ``target`` defaults to ``UNIWIZARD_REGISTRY_ADDR`` or ``127.0.0.1:50051``. Raises
    ``RouterUnavailable`` when the registry cannot be reached.
    """
    resp = _call(target, "ListBackends", registry_pb2.ListBackendsRequest(), deadline, token)
    assert isinstance(resp, registry_pb2.ListBackendsResponse)
    return {s.backend.key: backend_state(s) for s in resp.backends}


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
    req = registry_pb2.SetEnabledRequest(key=key, enabled=enabled, by=by, reason=reason)
    resp = _call(target, "SetEnabled", req, deadline, token)
    assert isinstance(resp, common_pb2.BackendStatus)
    return backend_state(resp)
