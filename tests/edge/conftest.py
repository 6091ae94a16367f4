"""The edge in front of the real stack (simulator, registry, caller, router on port 0), with the
official ``openai`` SDK as its client: the stack's own edge (wired by ``uniwizard serve``'s code),
or one built with a configuration of the test's own, linked to the router the way the stack's
components are linked (in-process, or over gRPC)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from openai import AsyncOpenAI

from edge_svc.config import EdgeConfig
from edge_svc.server import EdgeService, build_edge
from tests.stack import Stack
from uniwizard.net import Link, local_channel
from uniwizard.security import Security


@dataclass
class EdgeUnderTest:
    service: EdgeService
    stack: Stack
    token: str | None = None

    @property
    def base_url(self) -> str:
        return f"{self.service.url}/v1"

    def client(self, api_key: str | None = None) -> AsyncOpenAI:
        key = api_key if api_key is not None else (self.token or "unused")
        return AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=30.0)


def router_link(stack: Stack) -> Link:
    """How an edge of the test's own reaches the stack's router: as the stack's links go."""
    if stack.links == "inproc":
        return local_channel(stack.router.host.local, "edge_svc")
    return stack.router.target


@asynccontextmanager
async def running_edge(
    stack: Stack, *, token: str | None = None, config: EdgeConfig | None = None
) -> AsyncIterator[EdgeUnderTest]:
    """An edge of the test's own on a free port (its own token and configuration)."""
    service = await build_edge(
        "127.0.0.1:0",
        router=router_link(stack),
        router_target=stack.router.target,
        config=config or EdgeConfig(deadline_s=30.0),
        security=Security(token=token),
    )
    await service.start()
    try:
        yield EdgeUnderTest(service, stack, token)
    finally:
        await service.stop(grace=1.0)
