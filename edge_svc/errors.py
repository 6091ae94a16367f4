"""Errors in OpenAI's shape, and which HTTP status each failure of ours becomes. Pure: no I/O.

Every error the edge answers is ``{"error": {"message", "type", "param", "code", ...}}`` with
``code`` our outcome class (or ``bad_request`` / ``unauthorized`` / ``forbidden`` /
``too_large`` / ``not_found`` / ``unavailable`` for what the edge itself refuses) and, when the
router tried backends, ``attempts``, ``request_id`` and ``trace_id`` beside them.

| failure                                                     | status | type                  |
|-------------------------------------------------------------|--------|-----------------------|
| a field the edge or the router cannot take (``bad_request``) | 400    | invalid_request_error |
| ``context_window`` / ``content_policy`` (the request's own)  | 400    | invalid_request_error |
| no or a wrong bearer token                                  | 401    | authentication_error  |
| a token without the scope (``forbidden``)                   | 403    | permission_error      |
| an unknown path                                             | 404    | invalid_request_error |
| the body over the size limit (``too_large``)                | 413    | invalid_request_error |
| the identity guard rejected the request (``identity_leak``) | 422    | invalid_request_error |
| every backend tried was rate-limited (``rate_limited``)     | 429    | rate_limit_error      |
| the token's own budget is spent (``over_budget``)            | 429    | insufficient_quota    |
| the client went away (``cancelled``)                        | 499    | api_error             |
| any other upstream failure (server_error, refusal, ...)     | 502    | api_error             |
| no backend eligible (``no_backend``), the router unreachable | 503    | api_error             |
| the deadline passed (``timeout``)                           | 504    | api_error             |

A 429 carries ``retry-after``: the shortest wait a backend asked for (at least 1 s; 1 s when
none said), or, for a spent budget, the seconds until its UTC day or month starts again (the
type is OpenAI's own for an exhausted quota).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from uniwizard_client import AttemptInfo, RouterError

INVALID = "invalid_request_error"
API = "api_error"

# Outcome classes the router reports -> (HTTP status, OpenAI error type).
_OUTCOME_STATUS: dict[str, tuple[int, str]] = {
    "bad_request": (400, INVALID),
    "context_window": (400, INVALID),
    "content_policy": (400, INVALID),
    "identity_leak": (422, INVALID),
    "rate_limited": (429, "rate_limit_error"),
    "timeout": (504, API),
    "no_backend": (503, API),
    "cancelled": (499, API),
}

# A gRPC status the router gave without a DispatchFailure (no backend was tried).
_CODE_STATUS: dict[grpc.StatusCode, tuple[int, str, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, INVALID, "bad_request"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error", "unauthorized"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error", "forbidden"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (413, INVALID, "too_large"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, API, "timeout"),
    grpc.StatusCode.UNAVAILABLE: (503, API, "unavailable"),
    grpc.StatusCode.CANCELLED: (499, API, "cancelled"),
}


class ApiError(Exception):
    """One error response: its status, OpenAI's four fields, extra fields and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID,
        code: str = "bad_request",
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return {"error": {**error, "code": self.code, **self.extra}}

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


def bad_request(message: str, param: str | None = None) -> ApiError:
    """400 naming the field (``param``, OpenAI's dotted path, e.g. ``messages[2].content``)."""
    return ApiError(400, message, param=param)


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        message,
        type="authentication_error",
        code="unauthorized",
        headers={"www-authenticate": 'Bearer realm="uniwizard"'},
    )


def forbidden(scope: str) -> ApiError:
    """403: the token is known but lacks ``scope`` (e.g. ``think``)."""
    return ApiError(
        403,
        f"this token lacks the {scope!r} scope this route needs",
        type="permission_error",
        code="forbidden",
    )


def too_large(size: int | None, limit: int, setting: str) -> ApiError:
    """413: the body is over ``limit`` bytes (``size`` when known, from Content-Length)."""
    told = f"is {size:,} bytes" if size is not None else "is larger"
    return ApiError(
        413, f"the request body {told}; the limit is {limit:,} bytes ({setting})", code="too_large"
    )


def attempt_json(a: AttemptInfo) -> dict[str, Any]:
    return {
        "backend": a.backend,
        "outcome": a.outcome,
        "latency_ms": round(a.latency_ms, 1),
        "input_tokens": a.input_tokens,
        "output_tokens": a.output_tokens,
        "cost_usd": a.cost_usd,
        "error": a.error,
    }


def retry_after(attempts: Sequence[AttemptInfo]) -> int:
    """Seconds to wait: the shortest Retry-After a rate-limited backend gave, at least 1."""
    waits = [a.retry_after_s for a in attempts if a.retry_after_s > 0]
    return max(1, math.ceil(min(waits))) if waits else 1


def from_router_error(err: RouterError, request_id: str = "") -> ApiError:
    """The response for a failed Dispatch (or any router call)."""
    extra: dict[str, Any] = {}
    if err.reported:
        extra = {
            "attempts": [attempt_json(a) for a in err.attempts],
            "request_id": request_id,
            "trace_id": err.trace_id,
        }
        status, kind = _OUTCOME_STATUS.get(err.outcome, (502, API))
        headers: dict[str, str] = {}
        if status == 429:
            if not err.attempts or any(a.outcome != "rate_limited" for a in err.attempts):
                status, kind = 502, API  # not every backend tried was rate-limited
            else:
                headers["retry-after"] = str(retry_after(err.attempts))
        return ApiError(
            status, err.message, type=kind, code=err.outcome, extra=extra, headers=headers
        )
    if err.outcome == "over_budget":  # the token's budget: nothing was sent
        wait = str(max(1, math.ceil(err.retry_after_s)))
        return ApiError(
            429,
            err.message,
            type="insufficient_quota",
            code="over_budget",
            headers={"retry-after": wait},
        )
    status, kind, code = (
        _CODE_STATUS.get(err.code, (502, API, err.outcome))
        if err.code is not None
        else (502, API, err.outcome)
    )
    return ApiError(status, f"router: {err.message}", type=kind, code=code)
