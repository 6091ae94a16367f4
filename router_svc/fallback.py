"""What to do after an attempt: the design brief's outcome table as one pure function.

| outcome                       | next step                                                   |
|-------------------------------|-------------------------------------------------------------|
| success                       | return the answer                                           |
| rate_limited                  | wait Retry-After and retry when short and within deadline,  |
|                               | else next backend                                           |
| overloaded, auth              | next backend                                                |
| server_error, network         | one retry with backoff, then next                           |
| timeout                       | next backend; never retry a silent route                    |
| context_window                | next backend with a larger max_context                      |
| content_policy                | propagate (default) or next backend (configurable)          |
| refusal, empty, truncated,    | next backend                                                |
| malformed                     |                                                             |
| bad_request, identity_leak,   | stop with the error                                         |
| cancelled                     |                                                             |
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from uniwizard.types import CallResult, Outcome


class Action(enum.StrEnum):
    RETURN = "return"
    RETRY = "retry"  # same backend, after `delay_s`
    NEXT = "next"  # next backend in the chain
    NEXT_LARGER = "next_larger"  # next backend with a larger context window
    STOP = "stop"  # fail the dispatch with this outcome


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    max_retry_wait_s: float = 5.0  # longest Retry-After worth waiting for on the same backend
    max_tries_per_backend: int = 2  # first try + one retry
    backoff_s: float = 0.2  # server_error / network retry backoff (jittered)
    content_policy: str = "propagate"  # propagate | fallback


def next_step(result: CallResult, tries: int, remaining_s: float, policy: FallbackPolicy) -> Step:
    """``tries`` = attempts made on this backend so far (>= 1); ``remaining_s`` = deadline left."""
    o = result.outcome
    can_retry = tries < policy.max_tries_per_backend
    if o is Outcome.SUCCESS:
        return Step(Action.RETURN)
    if o is Outcome.RATE_LIMITED:
        wait = result.retry_after_s
        if can_retry and wait <= policy.max_retry_wait_s and wait + 0.5 < remaining_s:
            return Step(Action.RETRY, wait)
        return Step(Action.NEXT)
    if o in (Outcome.SERVER_ERROR, Outcome.NETWORK):
        delay = policy.backoff_s * random.uniform(0.5, 1.5)
        if can_retry and delay + 0.5 < remaining_s:
            return Step(Action.RETRY, delay)
        return Step(Action.NEXT)
    if o is Outcome.CONTEXT_WINDOW:
        return Step(Action.NEXT_LARGER)
    if o is Outcome.CONTENT_POLICY:
        if policy.content_policy == "fallback":
            return Step(Action.NEXT)  # configured to fall over
        return Step(Action.STOP)  # propagated (the default)
    if o in (Outcome.BAD_REQUEST, Outcome.IDENTITY_LEAK, Outcome.CANCELLED, Outcome.NO_BACKEND):
        return Step(Action.STOP)
    # overloaded, auth, timeout, refusal, empty, truncated, malformed
    return Step(Action.NEXT)
