"""Blocking clients of the registry (backends and their health, operator switches, reload) and of
the caller (the cost ledger's totals), for operator tools: the ``uniwizard`` command line and
dashboards such as the Evennia Workshop script.

    with RegistryClient() as registry:           # UNIWIZARD_REGISTRY_ADDR or 127.0.0.1:50051
        for b in registry.list_backends().backends:
            print(b.key, b.state)
        registry.set_enabled("gpt", False, by="ops", reason="maintenance")
    with CallerClient() as caller:               # UNIWIZARD_CALLER_ADDR or 127.0.0.1:50053
        print(caller.usage().total.cost_usd)

Failures raise ``RouterError`` (``RouterUnavailable`` when the service cannot be reached).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from uniwizard.v1 import caller_pb2, caller_pb2_grpc, registry_pb2, registry_pb2_grpc
from uniwizard_client.channels import ServiceClient, SyncConnection
from uniwizard_client.learning import StatsTable, stats_table
from uniwizard_client.results import (
    BackendList,
    BackendState,
    ReloadResult,
    UsageReport,
    backend_list,
    backend_state,
    reload_result,
    usage_report,
)


class _ServiceClient(ServiceClient):
    """A service client with a lazily opened channel; closes with ``with`` or ``close()``."""

    stub: Any = None  # the generated stub class
    _conn: SyncConnection[Any]

    def _connect(self) -> SyncConnection[Any]:
        return SyncConnection(self.endpoint, type(self).stub)

    def _call(self, method: str, request: Any, deadline: float | None) -> Any:
        return self._conn.unary(method, request, self._timeout(deadline))

    def close(self) -> None:
        self._conn.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RegistryClient(_ServiceClient):
    """registry_svc: ``target`` defaults to ``UNIWIZARD_REGISTRY_ADDR`` or ``127.0.0.1:50051``."""

    service = "registry"
    stub = registry_pb2_grpc.RegistryStub

    def __enter__(self) -> RegistryClient:
        return self

    def list_backends(self, *, deadline: float | None = None) -> BackendList:
        """Every configured backend with its live health, in configuration order."""
        pb = self._call("ListBackends", registry_pb2.ListBackendsRequest(), deadline)
        return backend_list(pb)

    def set_enabled(
        self,
        key: str,
        enabled: bool,
        *,
        by: str = "operator",
        reason: str = "",
        deadline: float | None = None,
    ) -> BackendState:
        """Operator enable/disable of one backend (persisted by the registry); its new state."""
        req = registry_pb2.SetEnabledRequest(key=key, enabled=enabled, by=by, reason=reason)
        return backend_state(self._call("SetEnabled", req, deadline))

    def reload(self, *, deadline: float | None = None) -> ReloadResult:
        """Re-read the backends file; a rejected file keeps the old configuration."""
        return reload_result(self._call("Reload", registry_pb2.ReloadRequest(), deadline))

    def stats(
        self, *, category: str = "", backend: str = "", deadline: float | None = None
    ) -> StatsTable:
        """What the registry learned per (category, backend), optionally filtered."""
        req = registry_pb2.StatsRequest(category=category, backend=backend)
        return stats_table(self._call("Stats", req, deadline))


class CallerClient(_ServiceClient):
    """caller_svc: ``target`` defaults to ``UNIWIZARD_CALLER_ADDR`` or ``127.0.0.1:50053``."""

    service = "caller"
    stub = caller_pb2_grpc.CallerStub

    def __enter__(self) -> CallerClient:
        return self

    def usage(
        self,
        since: float = 0.0,
        until: float = 0.0,
        *,
        by_client: bool = False,
        deadline: float | None = None,
    ) -> UsageReport:
        """The cost ledger's totals per backend and overall, between ``since`` and ``until``
        (epoch seconds; 0 = from the beginning / until now); ``by_client``: per client too
        (``UsageReport.clients``: which token spent what)."""
        req = caller_pb2.UsageRequest(since=since, until=until, by_client=by_client)
        return usage_report(self._call("Usage", req, deadline))
