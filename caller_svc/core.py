"""One attempt on one backend, end to end, without protobuf: a linear pipeline.

    admit (scrub identity, check the backend can take it) → build the provider request
    → ledger row begins (committed before anything leaves) → send → parse
    → classify (refusal, empty, usage, price) → record (span, metrics, ledger, registry report)

The steps live in their own modules: :mod:`caller_svc.attempt` (admit, classify, the stream's
opening gate; pure), :mod:`caller_svc.exchange` (send and parse: the transport moves bytes, the
provider layer reads them) and :mod:`caller_svc.record`. This module strings them together,
once for a unary call and once for a stream. Unary is one read of a whole body, not a stream
read to its end: it is less code on the hot path and each shape reads as what it is.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from caller_svc.attempt import (
    Admitted,
    OpeningGate,
    admit,
    classify,
    local_failure,
    refused_opening,
)
from caller_svc.exchange import Backend, exchange, exchange_stream
from caller_svc.identity import IdentityGuard
from caller_svc.ledger import Ledger, LedgerUnavailable, Rated, Totals
from caller_svc.record import CallContext, OutcomeReporter, Recorder
from caller_svc.refusal import RefusalDetector
from uniwizard.config_types import BackendConfig, Config
from uniwizard.providers import get_adapter
from uniwizard.providers.base import HttpRequest, ParsedResponse, UnsupportedInput
from uniwizard.ratings import Rating
from uniwizard.transport import HttpTransport
from uniwizard.types import BlindRequest, CallResult, Delta, Failure, Outcome

__all__ = ["CallContext", "CallerCore", "UnknownBackend"]

# How long a reload keeps a replaced backend's connections for calls in flight.
RETIRE_AFTER_S = 60.0


class UnknownBackend(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class _Sending:
    """An attempt past admission: what is sent, its ledger row, and when it started."""

    backend: Backend
    ctx: CallContext
    admitted: Admitted
    http: HttpRequest
    row_id: int
    started: float

    @property
    def config(self) -> BackendConfig:
        return self.backend.config


def _backend(config: BackendConfig) -> Backend:
    return Backend(config, get_adapter(config.provider), HttpTransport(config.connect_timeout))


class CallerCore:
    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        *,
        guard: IdentityGuard | None = None,
        refusals: RefusalDetector | None = None,
        reporter: OutcomeReporter | None = None,
        env: Mapping[str, str] | None = None,
        on_spend: Callable[[str, float], None] | None = None,
    ):
        self.config = config
        self.ledger = ledger
        self.guard = guard
        self.refusals = refusals or RefusalDetector()
        self.recorder = Recorder(ledger, reporter, on_spend)
        self.env = env if env is not None else os.environ
        self.backends: dict[str, Backend] = {k: _backend(b) for k, b in config.backends.items()}
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    def knows(self, key: str) -> bool:
        return key in self.backends

    def backend_keys(self) -> list[str]:
        return sorted(self.backends)

    async def rate(self, r: Rating, client: str | None = None) -> Rated:
        """Store a rating beside the ledger row of the attempt that answered (one made for
        ``client``, when given), and report it to the registry (which learns from it). Raises
        RatingRefused or LedgerUnavailable."""
        rated = await self.ledger.rate(r.request_id, r.trace_id, r.score, r.label, client)
        if self.recorder.reporter is not None:
            self.recorder.reporter.rated(rated.backend, rated.category, rated.score)
        return rated

    async def usage(
        self, since: float, until: float, *, by: str = "backend", client: str | None = None
    ) -> tuple[list[Totals], Totals]:
        """Ledger totals per backend (or per client) and overall for [since, until) (0 =
        open-ended), of every client's rows or only ``client``'s; raises LedgerUnavailable."""
        return await self.ledger.totals(since, until, by=by, client=client)

    async def client_spend(
        self, day_start: float, month_start: float
    ) -> dict[str, tuple[float, float]]:
        """USD per client since two UTC day starts, every caller's (ValueError when one is not
        a day's start; LedgerUnavailable)."""
        return await self.ledger.spend(day_start, month_start, by_client=True)

    def apply_config(self, config: Config, guard: IdentityGuard | None) -> list[str]:
        """Switch to a reloaded configuration: unchanged backends keep their pooled transport;
        changed and removed ones are closed after a minute (calls in flight finish on them).
        Returns the keys of new or changed backends."""
        old = self.backends
        new: dict[str, Backend] = {}
        for key, b in config.backends.items():
            kept = old.get(key)
            new[key] = kept if kept is not None and kept.config == b else _backend(b)
        retired = [t for k, t in old.items() if new.get(k) is not t]
        self.config, self.guard, self.backends = config, guard, new
        loop = asyncio.get_running_loop()
        for t in retired:
            loop.call_later(RETIRE_AFTER_S, self._spawn, t.transport.aclose())
        return [k for k, t in new.items() if old.get(k) is not t]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        for t in self.backends.values():
            await t.transport.aclose()

    # -- the two call shapes -------------------------------------------------------------------

    async def call(self, key: str, request: BlindRequest, ctx: CallContext) -> CallResult:
        backend = self._get(key)
        with self.recorder.span(backend.config, ctx, stream=False):
            sending = await self._prepare(backend, request, ctx, stream=False)
            if isinstance(sending, CallResult):
                return sending
            try:
                answer = await exchange(backend, sending.http, self._budget(sending))
            except asyncio.CancelledError:
                self._record(sending, self._cancelled(sending))  # queued; not waited for
                raise
            result = self._classify(sending, answer)
            await self._record(sending, result)
            return result

    async def call_stream(
        self, key: str, request: BlindRequest, ctx: CallContext
    ) -> AsyncGenerator[Delta | CallResult, None]:
        """Deltas (after the held-back opening passed the refusal check), then one CallResult."""
        backend = self._get(key)
        with self.recorder.span(backend.config, ctx, stream=True):
            sending = await self._prepare(backend, request, ctx, stream=True)
            if isinstance(sending, CallResult):
                yield sending
                return
            gate = OpeningGate(self.refusals)
            first_delta = 0.0  # perf_counter of the first delta from the provider
            done = False
            try:
                events = exchange_stream(backend, sending.http, self._budget(sending))
                async with aclosing(events) as items:
                    async for item in items:
                        if isinstance(item, Delta):
                            first_delta = first_delta or time.perf_counter()
                            for d in gate.admit(item):
                                yield d
                            if gate.refused is None:
                                continue
                            item = refused_opening(gate.refused)  # the rest is never read
                        result = self._classify(sending, item)
                        if first_delta:
                            ttft_ms = (first_delta - sending.started) * 1000.0
                            result = replace(result, ttft_ms=ttft_ms)
                        done = True  # before the await: a cancellation must not record twice
                        await self._record(sending, result)
                        if result.outcome is Outcome.SUCCESS:
                            for d in gate.release():  # a short answer, still held back
                                yield d
                        yield result
                        return
            except (asyncio.CancelledError, GeneratorExit):
                if not done:
                    self._record(sending, self._cancelled(sending))
                raise

    # -- the steps -----------------------------------------------------------------------------

    def _get(self, key: str) -> Backend:
        try:
            return self.backends[key]
        except KeyError:
            raise UnknownBackend(key) from None

    async def _prepare(
        self, backend: Backend, request: BlindRequest, ctx: CallContext, *, stream: bool
    ) -> _Sending | CallResult:
        """Admit, build and begin the ledger row; a CallResult (recorded) means: nothing sent."""
        b = backend.config
        admitted = admit(b, request, self.guard)
        if isinstance(admitted, CallResult):
            await self.recorder.record(b, admitted, ctx)
            return admitted
        started = time.perf_counter()
        try:
            http = backend.adapter.build_request(
                b, admitted.request, self._api_key(b), stream=stream
            )
            row_id = await self.recorder.begin(b, ctx)
        except UnsupportedInput as exc:
            result = local_failure(b, Outcome.BAD_REQUEST, str(exc))
            await self.recorder.record(b, result, ctx)
            return result
        except LedgerUnavailable as exc:
            # No committed row, no request. NO_BACKEND makes the router stop (every backend
            # would meet the same ledger) and the registry ignore the report.
            result = local_failure(b, Outcome.NO_BACKEND, f"nothing sent: {exc}")
            await self.recorder.record(b, result, ctx)
            return result
        return _Sending(backend, ctx, admitted, http, row_id, started)

    def _classify(self, sending: _Sending, answer: ParsedResponse | Failure) -> CallResult:
        """The attempt's result: outcome class, usage and price."""
        return classify(
            sending.config,
            sending.admitted.request,
            answer,
            self.refusals,
            latency_ms=(time.perf_counter() - sending.started) * 1000.0,
            scrubbed=sending.admitted.scrubbed,
            api_key=self._api_key(sending.config),
        )

    def _record(self, sending: _Sending, result: CallResult) -> Awaitable[bool]:
        return self.recorder.record(sending.config, result, sending.ctx, sending.row_id)

    def _cancelled(self, sending: _Sending) -> CallResult:
        b = sending.config
        return CallResult(
            backend=b.key,
            model=b.model,
            outcome=Outcome.CANCELLED,
            latency_ms=(time.perf_counter() - sending.started) * 1000.0,
            error_message="cancelled by the client",
        )

    def _api_key(self, b: BackendConfig) -> str | None:
        if not b.api_key_env:
            return None
        return self.env.get(b.api_key_env) or None

    def _budget(self, sending: _Sending) -> float:
        budget = sending.config.timeout
        if sending.ctx.budget_s is not None:
            budget = min(budget, max(0.05, sending.ctx.budget_s - 0.05))
        return budget
