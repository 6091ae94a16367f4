"""Typed errors: what the router reported, a bare status, and a status that contradicts itself."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import status_pb2

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
