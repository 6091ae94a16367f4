"""Active health probes: each provider's cheapest honest endpoint (model listing), never a paid
completion. One loop per backend on the configured interval with jitter; each probe is its own
short trace. The request comes from the provider layer and goes over the same transport the
caller uses; an error answer is classified by the same adapter that classifies calls.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from registry_svc.service import Registry
from uniwizard import telemetry
from uniwizard.config_types import BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.transport import HttpTransport
from uniwizard.types import Failure, Outcome

log = logging.getLogger(__name__)


class Prober:
    def __init__(self, registry: Registry, env: Mapping[str, str]):
        self.registry = registry
        self.env = env
        self._transports: dict[str, HttpTransport] = {}  # one connection pool per backend
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tracer = telemetry.tracer("registry_svc")

    def start(self) -> None:
        """(Re)start one loop per probe target: call after every reload."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {
            b.key: asyncio.create_task(self._loop(b.key), name=f"probe-{b.key}")
            for b in self.registry.probe_targets()
        }

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for transport in self._transports.values():
            await transport.aclose()

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
        backend = self.registry.probe_config(key)
        if backend is None:
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
        timeout = self.registry.config.probes.timeout
        started = time.perf_counter()
        reply = await self._transport(b, timeout).send(adapter.probe_request(b, key), timeout)
        latency = _ms(started)
        if isinstance(reply, Failure):
            return False, latency, _probe_failure(reply, timeout), reply.outcome, 0.0
        if reply.status < 400:
            return True, latency, "", None, 0.0
        err = adapter.parse_error(reply.status, reply.headers, reply.body)
        return False, latency, str(reply.status), err.outcome, err.retry_after_s

    def _transport(self, b: BackendConfig, timeout: float) -> HttpTransport:
        connect = min(timeout, b.connect_timeout)
        transport = self._transports.get(b.key)
        if transport is None or transport.connect_timeout != connect:
            transport = self._transports[b.key] = HttpTransport(connect)
        return transport


def _probe_failure(failure: Failure, timeout: float) -> str:
    if failure.outcome is Outcome.TIMEOUT:
        return f"probe timed out after {timeout:g} s"
    return failure.message


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
