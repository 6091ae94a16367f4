"""One attempt on one backend, end to end, without protobuf.

scrub identity → check the backend can take the input → build the provider request → send →
parse → classify the outcome (including semantic refusals and empty answers) → price →
write the ledger row → report the outcome to the registry (in the background).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from caller_svc.identity import IdentityGuard, IdentityLeak
from caller_svc.ledger import Ledger, LedgerRow, LedgerUnavailable
from caller_svc.pricing import estimate_tokens, price
from caller_svc.providers import get_adapter
from caller_svc.providers.base import (
    ParsedResponse,
    ProviderError,
    StreamDelta,
    UnsupportedInput,
)
from caller_svc.refusal import RefusalDetector
from caller_svc.transport import BackendTransport, Exchange, Failure
from uniwizard import telemetry
from uniwizard.config_types import BackendConfig, Config
from uniwizard.metrics import CallMetrics
from uniwizard.types import BlindRequest, CallResult, Outcome, Usage

log = logging.getLogger(__name__)

# How much of a streamed answer is held back before anything is forwarded, so a refusal or an
# early failure can still be rerouted.
HOLD_BACK_CHARS = 160
RETIRE_AFTER_S = (
    60.0  # how long a reload keeps a replaced backend's connections for calls in flight
)

# gen_ai.provider.name values from the GenAI semantic conventions.
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "openai_compatible": "openai",
}

Reporter = Callable[[str, Outcome, float, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CallContext:
    request_id: str = ""
    category: str = ""
    attempt: int = 1
    trace_id: str = ""
    budget_s: float | None = None  # remaining deadline of the gRPC call, if any


class UnknownBackend(KeyError):
    pass


class CallerCore:
    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        *,
        guard: IdentityGuard | None = None,
        refusals: RefusalDetector | None = None,
        reporter: Reporter | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.config = config
        self.ledger = ledger
        self.guard = guard
        self.refusals = refusals or RefusalDetector()
        self.reporter = reporter
        self.env = env if env is not None else os.environ
        self.transports: dict[str, BackendTransport] = {
            key: BackendTransport(b, get_adapter(b.provider)) for key, b in config.backends.items()
        }
        self._background: set[asyncio.Task[None]] = set()
        self.tracer = telemetry.tracer("caller_svc")
        self.metrics = CallMetrics("caller_svc")

    def apply_config(self, config: Config, guard: IdentityGuard | None) -> list[str]:
        """Switch to a reloaded configuration: unchanged backends keep their pooled transport;
        changed and removed ones are closed after a minute (calls in flight finish on them).
        Returns the keys of new or changed backends."""
        old = self.transports
        new: dict[str, BackendTransport] = {}
        for key, b in config.backends.items():
            kept = old.get(key)
            keep = kept is not None and kept.backend == b
            new[key] = kept if keep and kept else BackendTransport(b, get_adapter(b.provider))
        retired = [t for k, t in old.items() if new.get(k) is not t]
        self.config, self.guard, self.transports = config, guard, new
        loop = asyncio.get_running_loop()
        for t in retired:
            loop.call_later(RETIRE_AFTER_S, self._spawn, t.aclose())
        return [k for k, t in new.items() if old.get(k) is not t]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        for t in self.transports.values():
            await t.aclose()

    # -- preparation ---------------------------------------------------------------------

    def _backend(self, key: str) -> BackendTransport:
        try:
            return self.transports[key]
        except KeyError:
            raise UnknownBackend(key) from None

    def _prepare(
        self, b: BackendConfig, request: BlindRequest
    ) -> tuple[BlindRequest, int, CallResult | None]:
        """Scrub and check; a CallResult means: stop here, nothing is sent."""
        scrubbed = 0
        if self.guard is not None:
            try:
                guarded = self.guard.apply(request)
            except IdentityLeak as leak:
                fields = ", ".join(leak.fields[:5])
                return (
                    request,
                    0,
                    self._local_failure(
                        b,
                        Outcome.IDENTITY_LEAK,
                        f"identity material found in {fields}; nothing sent",
                    ),
                )
            request, scrubbed = guarded.request, guarded.matches
        for a in request.attachments():
            if a.modality not in b.modalities:
                return (
                    request,
                    scrubbed,
                    self._local_failure(
                        b,
                        Outcome.BAD_REQUEST,
                        f"backend {b.key} cannot take {a.media_type} attachments "
                        f"(modalities: {', '.join(b.modalities)})",
                    ),
                )
        if request.tools and not b.tools:
            return (
                request,
                scrubbed,
                self._local_failure(
                    b, Outcome.BAD_REQUEST, f"backend {b.key} does not support tools"
                ),
            )
        if not request.messages:
            return (
                request,
                scrubbed,
                self._local_failure(b, Outcome.BAD_REQUEST, "the request has no messages"),
            )
        return request, scrubbed, None

    def _local_failure(self, b: BackendConfig, outcome: Outcome, message: str) -> CallResult:
        return CallResult(backend=b.key, model=b.model, outcome=outcome, error_message=message)

    def _api_key(self, b: BackendConfig) -> str | None:
        if not b.api_key_env:
            return None
        return self.env.get(b.api_key_env) or None

    def _budget(self, b: BackendConfig, ctx: CallContext) -> float:
        budget = b.timeout
        if ctx.budget_s is not None:
            budget = min(budget, max(0.05, ctx.budget_s - 0.05))
        return budget

    # -- classification --------------------------------------------------------------------

    def _finish(
        self,
        b: BackendConfig,
        request: BlindRequest,
        exchange: Exchange,
        started: float,
        scrubbed: int,
    ) -> CallResult:
        """Classify and price an exchange; a provider that echoes our key never passes it on."""
        result = self._classify(b, request, exchange, started, scrubbed)
        key = self._api_key(b)
        if key and result.error_message and key in result.error_message:
            result = replace(result, error_message=result.error_message.replace(key, "***"))
        return result

    def _classify(
        self,
        b: BackendConfig,
        request: BlindRequest,
        exchange: Exchange,
        started: float,
        scrubbed: int,
    ) -> CallResult:
        latency_ms = (time.perf_counter() - started) * 1000.0
        base = CallResult(
            backend=b.key,
            model=b.model,
            outcome=Outcome.SUCCESS,
            latency_ms=latency_ms,
            scrubbed=scrubbed,
        )
        if isinstance(exchange, Failure):
            spent = Usage()
            if exchange.partial_text:
                spent = Usage(
                    estimate_tokens(request.text()),
                    estimate_tokens(exchange.partial_text),
                    estimated=True,
                )
            return replace(
                base,
                outcome=exchange.outcome,
                error_message=exchange.message,
                http_status=exchange.http_status,
                usage=spent,
                cost_usd=price(b, spent),
                cost_source="estimated",
            )
        if isinstance(exchange, ProviderError):
            return replace(
                base,
                outcome=exchange.outcome,
                error_message=exchange.message,
                http_status=exchange.http_status,
                retry_after_s=exchange.retry_after_s,
            )
        parsed: ParsedResponse = exchange
        usage = parsed.usage
        source = "provider"
        if usage is None:
            usage = Usage(
                estimate_tokens(request.text()), estimate_tokens(parsed.text), estimated=True
            )
            source = "estimated"
        outcome = Outcome.SUCCESS
        message = ""
        if parsed.provider_refusal:
            outcome, message = Outcome.REFUSAL, parsed.refusal_detail or "provider refusal signal"
        elif not parsed.text.strip() and not parsed.tool_calls:
            outcome, message = Outcome.EMPTY, "the answer was empty"
        elif not parsed.tool_calls:
            verdict = self.refusals.detect(parsed.text)
            if verdict.is_refusal:
                outcome, message = Outcome.REFUSAL, f"semantic refusal ({verdict.rule})"
        return replace(
            base,
            outcome=outcome,
            error_message=message,
            text=parsed.text,
            tool_calls=tuple(parsed.tool_calls),
            finish_reason=parsed.finish_reason,
            usage=usage,
            cost_usd=price(b, usage),
            cost_source=source,
            response_model=parsed.response_model,
            http_status=200,
        )

    def _span(self, b: BackendConfig, stream: bool) -> Any:
        """The provider call as a CLIENT span named ``{operation} {model}`` (GenAI conventions)."""
        return self.tracer.start_as_current_span(
            f"chat {b.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER_NAMES.get(b.provider, b.provider),
                "gen_ai.request.model": b.model,
                "uniwizard.backend": b.key,
                "uniwizard.stream": stream,
            },
        )

    def _annotate(self, result: CallResult) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.response.model", result.response_model or result.model)
        span.set_attribute("gen_ai.usage.input_tokens", result.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", result.usage.output_tokens)
        if result.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])
        span.set_attribute("gen_ai.usage.cost.amount", result.cost_usd)
        span.set_attribute("gen_ai.usage.cost.currency", "USD")
        span.set_attribute("gen_ai.usage.cost.source", result.cost_source)
        span.set_attribute("uniwizard.outcome", result.outcome.value)
        if result.http_status:
            span.set_attribute("http.response.status_code", result.http_status)
        if result.scrubbed:
            span.set_attribute("uniwizard.identity.redactions", result.scrubbed)
        if result.outcome is not Outcome.SUCCESS:
            span.set_attribute("error.type", result.outcome.value)
            span.set_status(Status(StatusCode.ERROR, result.outcome.value))

    async def _begin(self, b: BackendConfig, ctx: CallContext) -> int:
        """The ledger row of an attempt about to leave for the provider, committed; raises
        LedgerUnavailable if it cannot be (see _unledgered)."""
        return await self.ledger.begin(
            LedgerRow(
                backend=b.key,
                model=b.model,
                outcome="",
                input_tokens=0,
                output_tokens=0,
                cost_usd=0.0,
                cost_source="estimated",
                latency_ms=0.0,
                trace_id=ctx.trace_id,
                request_id=ctx.request_id,
                category=ctx.category,
                attempt=ctx.attempt,
            )
        )

    def _record(self, result: CallResult, ctx: CallContext, row_id: int = 0) -> Awaitable[bool]:
        """Metrics, span, report, and the ledger row (queued). Await the result before handing
        the answer back, so that its row is committed first; it never raises, and a ledger that
        cannot write just now does not hold the answer (the row is kept and retried)."""
        self._annotate(result)
        b = self.config.backends.get(result.backend)
        failed = result.outcome is not Outcome.SUCCESS
        self.metrics.record(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER_NAMES.get(b.provider, b.provider) if b else "",
                "gen_ai.request.model": result.model,
                "uniwizard.backend": result.backend,
            },
            result.usage.input_tokens,
            result.usage.output_tokens,
            result.latency_ms / 1000.0,
            result.cost_usd,
            result.cost_source,
            result.outcome.value if failed else None,
        )
        row = LedgerRow(
            backend=result.backend,
            model=result.model,
            outcome=result.outcome.value,
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cached_input_tokens=result.usage.cached_input_tokens,
            cost_usd=result.cost_usd,
            cost_source=result.cost_source,
            latency_ms=result.latency_ms,
            trace_id=ctx.trace_id,
            request_id=ctx.request_id,
            category=ctx.category,
            attempt=ctx.attempt,
            http_status=result.http_status,
            identity_redactions=result.scrubbed,
            sent=bool(row_id),
        )
        written = self.ledger.finish(row_id, row) if row_id else self.ledger.record(row)
        if self.reporter is not None and result.outcome is not Outcome.IDENTITY_LEAK:
            task = asyncio.ensure_future(
                self.reporter(result.backend, result.outcome, result.retry_after_s, _detail(result))
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return written

    # -- the two call shapes -----------------------------------------------------------------

    async def call(self, key: str, request: BlindRequest, ctx: CallContext) -> CallResult:
        transport = self._backend(key)
        with self._span(transport.backend, stream=False):
            return await self._call(transport, request, ctx)

    async def _call(
        self, transport: BackendTransport, request: BlindRequest, ctx: CallContext
    ) -> CallResult:
        b = transport.backend
        request, scrubbed, early = self._prepare(b, request)
        if early is not None:
            await self._record(early, ctx)
            return early
        started = time.perf_counter()
        try:
            http = transport.adapter.build_request(b, request, self._api_key(b), stream=False)
        except UnsupportedInput as exc:
            result = self._local_failure(b, Outcome.BAD_REQUEST, str(exc))
            await self._record(result, ctx)
            return result
        try:
            row_id = await self._begin(b, ctx)
        except LedgerUnavailable as exc:
            result = self._unledgered(b, exc)
            await self._record(result, ctx)
            return result
        try:
            exchange = await transport.send(http, self._budget(b, ctx))
        except asyncio.CancelledError:
            self._record(self._cancelled(b, started), ctx, row_id)
            raise
        result = self._finish(b, request, exchange, started, scrubbed)
        await self._record(result, ctx, row_id)
        return result

    async def call_stream(
        self, key: str, request: BlindRequest, ctx: CallContext
    ) -> AsyncGenerator[StreamDelta | CallResult, None]:
        """Deltas (after the held-back opening passed the refusal check), then one CallResult."""
        transport = self._backend(key)
        with self._span(transport.backend, stream=True):
            async with aclosing(self._call_stream(transport, request, ctx)) as items:
                async for item in items:
                    yield item

    async def _call_stream(
        self, transport: BackendTransport, request: BlindRequest, ctx: CallContext
    ) -> AsyncGenerator[StreamDelta | CallResult, None]:
        b = transport.backend
        request, scrubbed, early = self._prepare(b, request)
        if early is not None:
            await self._record(early, ctx)
            yield early
            return
        started = time.perf_counter()
        try:
            http = transport.adapter.build_request(b, request, self._api_key(b), stream=True)
        except UnsupportedInput as exc:
            result = self._local_failure(b, Outcome.BAD_REQUEST, str(exc))
            await self._record(result, ctx)
            yield result
            return
        held: list[StreamDelta] = []
        held_chars = 0
        holding = True
        recorded = False
        try:
            row_id = await self._begin(b, ctx)
        except LedgerUnavailable as exc:
            result = self._unledgered(b, exc)
            await self._record(result, ctx)
            yield result
            return
        try:
            async with aclosing(transport.stream(http, self._budget(b, ctx))) as items:
                async for item in items:
                    if isinstance(item, StreamDelta):
                        if not holding:
                            yield item
                            continue
                        held.append(item)
                        held_chars += len(item.text)
                        if held_chars < HOLD_BACK_CHARS and item.tool_call is None:
                            continue
                        opening = "".join(d.text for d in held)
                        if item.tool_call is None and self.refusals.detect(opening).is_refusal:
                            # The opening alone is judged; the rest is never read.
                            result = self._finish(
                                b,
                                request,
                                ParsedResponse(
                                    text=opening,
                                    tool_calls=(),
                                    finish_reason="refusal",
                                    raw_finish_reason="",
                                    usage=None,
                                    response_model="",
                                    provider_refusal=False,
                                ),
                                started,
                                scrubbed,
                            )
                            recorded = True  # queued: a cancellation now must not finish it again
                            await self._record(result, ctx, row_id)
                            yield result
                            return
                        holding = False
                        for d in held:
                            yield d
                        held = []
                        continue
                    result = self._finish(b, request, item, started, scrubbed)
                    if holding and result.outcome is Outcome.SUCCESS:
                        for d in held:
                            yield d
                    recorded = True
                    await self._record(result, ctx, row_id)
                    yield result
                    return
        except (asyncio.CancelledError, GeneratorExit):
            if not recorded:
                self._record(self._cancelled(b, started), ctx, row_id)
            raise

    def _unledgered(self, b: BackendConfig, exc: LedgerUnavailable) -> CallResult:
        """No committed ledger row, no request: nothing is sent. NO_BACKEND makes the router
        stop (every backend would hit the same ledger) and the registry ignore the report."""
        return self._local_failure(b, Outcome.NO_BACKEND, f"nothing sent: {exc}")

    def _cancelled(self, b: BackendConfig, started: float) -> CallResult:
        return CallResult(
            backend=b.key,
            model=b.model,
            outcome=Outcome.CANCELLED,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            error_message="cancelled by the client",
        )


def _detail(result: CallResult) -> str:
    """A short report detail: the HTTP status and the provider's message, never prompt text."""
    status = f"{result.http_status} " if result.http_status and result.http_status != 200 else ""
    return (status + result.error_message)[:200]
