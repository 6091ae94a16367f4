"""Active health probes: each provider's cheapest honest endpoint (model listing), never a paid
completion. One loop per backend on the configured interval with jitter; each probe is its own
short trace.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping

import httpx
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from caller_svc.providers import get_adapter
from registry_svc.service import Registry
from uniwizard import telemetry
from uniwizard.config_types import BackendConfig
from uniwizard.types import Outcome

log = logging.getLogger(__name__)


class Prober:
    def __init__(self, registry: Registry, env: Mapping[str, str]):
        self.registry = registry
        self.env = env
        self.client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tracer = telemetry.tracer("registry_svc")

    def start(self) -> None:
        """(Re)start one loop per probe target: call after every reload."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {
            b.key: asyncio.create_task(self._loop(b.key), name=f"probe-{b.key}")
            for b in self.registry.book.probe_targets()
        }

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self.client.aclose()

    async def _loop(self, key: str) -> None:
        cfg = self.registry.config.probes
        await asyncio.sleep(random.uniform(0, min(1.0, cfg.interval * cfg.jitter)))
        while True:
            try:
                await self.probe(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # a probe bug must not kill the loop
                log.exception("probe of %s failed unexpectedly", key)
            cfg = self.registry.config.probes
            await asyncio.sleep(cfg.interval * (1 + random.uniform(-cfg.jitter, cfg.jitter)))

    async def probe(self, key: str) -> bool:
        """Probe one backend now and record the result; True when it answered well."""
        try:
            backend = self.registry.book.config(key)
        except KeyError:
            return False
        if not self.registry.book.needs_probe(key):
            return False
        token = otel_context.attach(otel_context.Context())  # its own trace, not a child
        try:
            with self._tracer.start_as_current_span(
                f"probe {key}",
                kind=SpanKind.CLIENT,
                attributes={"uniwizard.backend": key, "gen_ai.provider.name": backend.provider},
            ) as span:
                ok, latency_ms, detail, outcome, retry_after = await self._probe_once(backend)
                span.set_attribute("uniwizard.probe.ok", ok)
                if outcome is not None and not ok:
                    span.set_attribute("error.type", outcome.value)
        finally:
            otel_context.detach(token)
        self.registry.probed(key, ok, latency_ms, detail, outcome, retry_after)
        return ok

    async def _probe_once(self, b: BackendConfig) -> tuple[bool, float, str, Outcome | None, float]:
        adapter = get_adapter(b.provider)
        key = self.env.get(b.api_key_env) if b.api_key_env else None
        req = adapter.probe_request(b, key)
        timeout = self.registry.config.probes.timeout
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                resp = await self.client.request(
                    req.method,
                    req.url,
                    headers=req.headers,
                    timeout=httpx.Timeout(timeout, connect=min(timeout, b.connect_timeout)),
                )
        except (TimeoutError, httpx.TimeoutException):
            return False, _ms(started), f"probe timed out after {timeout:g} s", Outcome.TIMEOUT, 0.0
        except httpx.ConnectError:
            return False, _ms(started), "connection refused or unreachable", Outcome.NETWORK, 0.0
        except httpx.TransportError as exc:
            return (
                False,
                _ms(started),
                f"transport error ({type(exc).__name__})",
                Outcome.NETWORK,
                0.0,
            )
        latency = _ms(started)
        if resp.status_code < 400:
            return True, latency, "", None, 0.0
        err = adapter.parse_error(resp.status_code, resp.headers, resp.content)
        return False, latency, str(resp.status_code), err.outcome, err.retry_after_s


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
