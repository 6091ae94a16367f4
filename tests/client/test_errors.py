"""Typed errors: what the router reported, a bare status, and a status that contradicts itself."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import status_pb2

from router_svc.client_budget import Reached
from router_svc.servicer import budget_status
from tests.stack import Stack
from uniwizard.v1 import common_pb2, router_pb2
from uniwizard_client import BackendRouter, RouterError
from uniwizard_client.errors import from_rpc_error


def test_a_bare_status_is_not_a_reported_failure(threaded_stack: Stack) -> None:
    with BackendRouter(threaded_stack.router.target, deadline=20) as router:
        with pytest.raises(RouterError) as err:
            router.decide("   ")
    assert (err.value.outcome, err.value.status, err.value.reported) == (
        "bad_request",
        "INVALID_ARGUMENT",
        False,
    )
    assert "empty" in err.value.details


class FakeError(grpc.RpcError):
    """What a failed call looks like to ``from_rpc_error``: code, details, trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str, status: status_pb2.Status):
        self._code, self._details = code, details
        self._trailing = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._trailing


def _status(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(
        router_pb2.DispatchFailure(
            outcome=common_pb2.OUTCOME_CLASS_RATE_LIMITED, message=message, trace_id="t" * 32
        )
    )
    return status_pb2.Status(code=code.value[0], message=message, details=[detail])


def test_the_dispatch_failure_in_the_status_and_an_inconsistent_status() -> None:
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    good = from_rpc_error(
        FakeError(code, "all busy", _status(code, "all busy")), service="router", target="x:1"
    )
    assert (good.outcome, good.reported, good.trace_id) == ("rate_limited", True, "t" * 32)
    # details that disagree with the status they came with are ignored, not a crash
    bad = from_rpc_error(
        FakeError(code, "all busy", _status(grpc.StatusCode.INTERNAL, "other")),
        service="router",
        target="x:1",
    )
    assert (bad.outcome, bad.reported, bad.message) == ("rate_limited", False, "all busy")


def test_a_client_at_its_budget_is_over_budget_with_when_it_lifts() -> None:
    """The router's refusal (gRPC's standard QuotaFailure and RetryInfo details) reads as
    ``over_budget``, not as a rate limit or a size limit, with the wait until the cap lifts."""
    now = 1_796_126_400.0  # 2026-12-01 12:00 UTC
    over = Reached("token 'a' has reached its daily budget ($1.00; ...)", now + 43_200.4)
    status = budget_status("a", over, now)
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    err = from_rpc_error(FakeError(code, over.message, status), service="router", target="x:1")
    assert (err.outcome, err.reported, err.status) == ("over_budget", False, "RESOURCE_EXHAUSTED")
    assert err.message == over.message and err.retry_after_s == 43_201
    # Without the QuotaFailure it is a bare RESOURCE_EXHAUSTED (e.g. a message over gRPC's size
    # limit), as before.
    bare = status_pb2.Status(code=code.value[0], message="too big")
    plain = from_rpc_error(FakeError(code, "too big", bare), service="router", target="x:1")
    assert (plain.outcome, plain.retry_after_s) == ("rate_limited", 0.0)


def test_on_behalf_of_must_be_a_client_name() -> None:
    router = BackendRouter("127.0.0.1:1")
    with pytest.raises(ValueError, match="on_behalf_of: 'bad name!' is not a client name"):
        router.dispatch("hello", on_behalf_of="bad name!")
    with pytest.raises(ValueError, match="on_behalf_of"):
        router.rate("r1", 0.5, on_behalf_of="x" * 65)
    router.close()
