"""Evennia settings for Uniwizard (all optional), read with ``getattr(settings, ..., default)``.

    UNIWIZARD_ROUTER_ADDR      router_svc target       (default: env UNIWIZARD_ROUTER_ADDR,
                                                         else 127.0.0.1:50052); several
                               routers: "dns:///router:50052" or "IP:PORT,IP:PORT" (calls go
                               round robin to those serving; see uniwizard.balancing)
    UNIWIZARD_REGISTRY_ADDR    registry_svc address    (default: env, else 127.0.0.1:50051)
    UNIWIZARD_DEADLINE         seconds per call        (default 60)
    UNIWIZARD_TOKEN            bearer token            (default none)
    UNIWIZARD_SYSTEM_PROMPT    task-scoped system prompt sent with every think
    UNIWIZARD_HEALTH_INTERVAL  seconds between the Workshop script's registry polls (default 30)
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings

from uniwizard_client import BackendRouter

DEFAULT_SYSTEM_PROMPT = "You are a careful assistant. Answer the task."
DEFAULT_DEADLINE = 60.0
DEFAULT_HEALTH_INTERVAL = 30


def _get(name: str, default: Any) -> Any:
    value = getattr(settings, name, None)
    return default if value in (None, "") else value


def router_addr() -> str | None:
    return _get("UNIWIZARD_ROUTER_ADDR", None)


def registry_addr() -> str | None:
    return _get("UNIWIZARD_REGISTRY_ADDR", None)


def deadline() -> float:
    return float(_get("UNIWIZARD_DEADLINE", DEFAULT_DEADLINE))


def token() -> str | None:
    return _get("UNIWIZARD_TOKEN", None)


def system_prompt() -> str:
    return str(_get("UNIWIZARD_SYSTEM_PROMPT", DEFAULT_SYSTEM_PROMPT))


def health_interval() -> int:
    return max(1, int(_get("UNIWIZARD_HEALTH_INTERVAL", DEFAULT_HEALTH_INTERVAL)))


@functools.lru_cache(maxsize=8)
def _router(target: str | None, deadline_s: float, token_: str | None) -> BackendRouter:
    return BackendRouter(target, deadline=deadline_s, token=token_)


def router() -> BackendRouter:
    """One shared client (one channel) per configuration; gRPC channels are thread-safe."""
    return _router(router_addr(), deadline(), token())
