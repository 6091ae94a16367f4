"""OpenTelemetry metrics: GenAI client metrics, cost, and backend health.

On when ``OTEL_METRICS_EXPORTER`` is ``otlp``/``console`` or an ``OTEL_EXPORTER_OTLP_[METRICS_]
ENDPOINT`` is set (and ``OTEL_SDK_DISABLED`` is not true), or when a test installs a reader with
:func:`use_reader`. Otherwise every instrument is a no-op.

Instruments (GenAI semantic conventions where they exist):

* ``gen_ai.client.token.usage`` (histogram, ``{token}``; ``gen_ai.token.type`` input/output)
* ``gen_ai.client.operation.duration`` (histogram, s; ``error.type`` on failures)
* ``uniwizard.cost`` (counter, USD; ``gen_ai.usage.cost.source``)
* ``uniwizard.backend.routable`` (gauge, 1/0 per backend with its ``uniwizard.health.state``)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from uniwizard.telemetry import signal_enabled

if TYPE_CHECKING:  # the SDK is imported only when metrics are on
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader

_lock = threading.Lock()
_providers: dict[str, MeterProvider] = {}
_test_reader_factory: Callable[[], MetricReader] | None = None
_test_readers: dict[str, MetricReader] = {}


def use_reader(factory: Callable[[], MetricReader] | None) -> dict[str, MetricReader]:
    """Give each service in this process a reader from ``factory`` (tests); returns them by
    service name as they are created. None turns metrics off."""
    global _test_reader_factory
    with _lock:
        _test_reader_factory = factory
        _providers.clear()
        _test_readers.clear()
        return _test_readers


def enabled() -> bool:
    return _test_reader_factory is not None or signal_enabled("metrics")


def _env_reader() -> MetricReader:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if os.environ.get("OTEL_METRICS_EXPORTER", "").lower() == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpExporter,
        )

        return PeriodicExportingMetricReader(HttpExporter())
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter())


def meter(service_name: str) -> metrics.Meter:
    if not enabled():
        return metrics.NoOpMeter("uniwizard")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource

    with _lock:
        mp = _providers.get(service_name)
        if mp is None:
            if _test_reader_factory is not None:
                reader = _test_reader_factory()
                _test_readers[service_name] = reader
            else:
                reader = _env_reader()
            mp = MeterProvider(
                metric_readers=[reader], resource=Resource.create({"service.name": service_name})
            )
            _providers[service_name] = mp
        return mp.get_meter("uniwizard")


def shutdown() -> None:
    with _lock:
        providers = list(_providers.values())
    for mp in providers:
        mp.force_flush()


class CallMetrics:
    """The caller's per-attempt instruments."""

    def __init__(self, service_name: str = "caller_svc"):
        self.on = enabled()  # off: record() returns at once, no attributes built
        m = meter(service_name)
        self.tokens = m.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Input and output tokens per provider call",
        )
        self.duration = m.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of provider calls"
        )
        self.cost = m.create_counter(
            "uniwizard.cost", unit="USD", description="Cost of provider calls"
        )

    def record(
        self,
        attrs: dict[str, Any],
        input_tokens: int,
        output_tokens: int,
        seconds: float,
        cost: float,
        cost_source: str,
        error: str | None,
    ) -> None:
        if not self.on:
            return
        if input_tokens or output_tokens:
            self.tokens.record(input_tokens, {**attrs, "gen_ai.token.type": "input"})
            self.tokens.record(output_tokens, {**attrs, "gen_ai.token.type": "output"})
        self.duration.record(seconds, {**attrs, "error.type": error} if error else attrs)
        if cost:
            self.cost.add(cost, {**attrs, "gen_ai.usage.cost.source": cost_source})


def observe_health(service_name: str, read: Callable[[], Iterable[tuple[str, str, bool]]]) -> None:
    """A gauge over ``read()`` → (backend, state, routable) for every backend."""

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        for backend, state, routable in read():
            yield Observation(
                1 if routable else 0,
                {"uniwizard.backend": backend, "uniwizard.health.state": state},
            )

    meter(service_name).create_observable_gauge(
        "uniwizard.backend.routable",
        callbacks=[callback],
        description="1 when the backend can take traffic, with its health state",
    )
