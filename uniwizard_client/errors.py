"""Client exceptions, read from the gRPC status (details: a packed ``DispatchFailure``, or a
``google.rpc.QuotaFailure`` with a ``RetryInfo`` for a client refused at its budget).

This is the one place that reads a gRPC status: everything above it sees :class:`RouterError`.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from uniwizard.convert import outcome_from_pb
from uniwizard.v1 import router_pb2
from uniwizard_client.results import AttemptInfo, attempt_info

# A status without a DispatchFailure: the closest outcome class.
_CLASS_FOR_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: "bad_request",
    grpc.StatusCode.DEADLINE_EXCEEDED: "timeout",
    grpc.StatusCode.CANCELLED: "cancelled",
    grpc.StatusCode.UNAUTHENTICATED: "auth",
    grpc.StatusCode.PERMISSION_DENIED: "auth",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "rate_limited",
    grpc.StatusCode.NOT_FOUND: "bad_request",
}


class RouterError(Exception):
    """A request the router (or registry, or caller) could not satisfy.

    ``outcome`` is the outcome class ("rate_limited", "no_backend", "bad_request", ...),
    ``attempts`` every attempt the dispatch made, ``trace_id`` the request's trace.
    ``reported`` is true when the router said why itself (a ``DispatchFailure``: its outcome,
    attempts and trace id); otherwise only the gRPC status is known: ``status`` (the code's
    name, e.g. ``"NOT_FOUND"``) and ``details`` (its message, as the service sent it).
    ``over_budget`` is the outcome of a client refused at its token's budget (nothing was
    sent); ``retry_after_s`` is then how long until that budget's window starts again.
    """

    def __init__(
        self,
        message: str,
        *,
        outcome: str,
        attempts: tuple[AttemptInfo, ...] = (),
        trace_id: str = "",
        code: grpc.StatusCode | None = None,
        details: str = "",
        reported: bool = False,
        retry_after_s: float = 0.0,
    ):
        super().__init__(message)
        self.message = message
        self.outcome = outcome
        self.attempts = attempts
        self.trace_id = trace_id
        self.code = code
        self.details = details
        self.reported = reported
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> str:
        """The gRPC status code's name (``"UNAVAILABLE"``), or "" if no call failed."""
        return self.code.name if self.code is not None else ""

    def __str__(self) -> str:
        return f"{self.outcome}: {self.message}"


class RouterUnavailable(RouterError):
    """The service could not be reached (not running, wrong address, network down)."""

    def __init__(self, service: str, target: str, detail: str = ""):
        message = f"cannot reach {service}_svc at {target}"
        super().__init__(
            message + (f" ({detail})" if detail else ""),
            outcome="unavailable",
            code=grpc.StatusCode.UNAVAILABLE,
            details=detail,
        )
        self.service = service
        self.target = target

    @property
    def connect_failed(self) -> bool:
        """The channel failed to connect (gRPC says so in the details: refused, reset, ...), as
        opposed to, say, a name that does not resolve or a connection lost mid-call."""
        return "connect" in self.details.lower()


def _details(exc: grpc.RpcError) -> list[any_pb2.Any]:
    """The rich status details the service packed, if any."""
    try:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    except ValueError:  # inconsistent status: ignore the details
        return []
    return list(status.details) if status is not None else []


def _unpacked(details: list[any_pb2.Any], message: Any) -> Any:
    """The first of ``details`` that is a ``message``'s type, unpacked into it, or None."""
    for detail in details:
        if detail.Unpack(message):
            return message
    return None


def from_rpc_error(exc: grpc.RpcError, *, service: str, target: str) -> RouterError:
    """The typed exception for a failed RPC (sync or asyncio, unary or streaming)."""
    code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
    details: str = exc.details() or ""  # type: ignore[attr-defined]
    packed = _details(exc)
    failure = _unpacked(packed, router_pb2.DispatchFailure())
    if failure is not None:
        outcome = outcome_from_pb(failure.outcome)
        return RouterError(
            failure.message or details,
            outcome=outcome.value if outcome else "unknown",
            attempts=tuple(attempt_info(a) for a in failure.attempts),
            trace_id=failure.trace_id,
            code=code,
            details=details,
            reported=True,
        )
    if _unpacked(packed, error_details_pb2.QuotaFailure()) is not None:
        retry = _unpacked(packed, error_details_pb2.RetryInfo())
        return RouterError(
            details,
            outcome="over_budget",
            code=code,
            details=details,
            retry_after_s=retry.retry_delay.ToTimedelta().total_seconds() if retry else 0.0,
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return RouterUnavailable(service, target, details)
    return RouterError(
        details or code.name.lower(),
        outcome=_CLASS_FOR_CODE.get(code, code.name.lower()),
        code=code,
        details=details,
    )
