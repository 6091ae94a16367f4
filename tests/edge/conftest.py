"""The edge in front of the real stack (simulator, registry, caller, router on port 0), with the
official ``openai`` SDK as its client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from openai import AsyncOpenAI

from edge_svc.config import EdgeConfig
from edge_svc.server import EdgeService, build_edge
from tests.stack import Stack
from uniwizard.security import Security


@dataclass
class EdgeUnderTest:
    service: EdgeService
    stack: Stack
    token: str | None = None

    @property
    def base_url(self) -> str:
        return f"{self.service.url}/v1"

    def client(self, api_key: str | None = None, **kw: object) -> AsyncOpenAI:
        key = api_key if api_key is not None else (self.token or "unused")
        return AsyncOpenAI(
            base_url=self.base_url,
            api_key=key,
            max_retries=0,
            timeout=30.0,
            **kw,  # type: ignore[arg-type]
        )


@asynccontextmanager
async def running_edge(
    stack: Stack, *, token: str | None = None, config: EdgeConfig | None = None
) -> AsyncIterator[EdgeUnderTest]:
    """The edge on a free port, calling the stack's router over gRPC."""
    service = build_edge(
        "127.0.0.1:0",
        router_target=stack.router.target,
        config=config or EdgeConfig(deadline_s=30.0),
        security=Security(token=token),
    )
    await service.start()
    try:
        yield EdgeUnderTest(service, stack, token)
    finally:
        await service.stop(grace=1.0)
