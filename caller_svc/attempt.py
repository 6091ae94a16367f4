"""The pure steps of one attempt: what may be sent, and what an answer means. No I/O.

* :func:`admit` — scrub identity and check the backend can take the request (or say why not);
* :func:`classify` — turn a provider's answer or failure into the attempt's one
  :class:`~uniwizard.types.CallResult`: semantic refusals and empty answers, usage (estimated
  when the provider gave none), price, and a provider that echoes our key never passes it on;
* :class:`OpeningGate` — a stream's opening held back until it can be judged, so a refusal or
  an early failure can still be rerouted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from caller_svc.identity import IdentityGuard, IdentityLeak
from caller_svc.refusal import RefusalDetector
from uniwizard.config_types import BackendConfig
from uniwizard.providers.base import FINISH_REFUSAL, ParsedResponse
from uniwizard.providers.formats import can_return, output_formats
from uniwizard.providers.pricing import price
from uniwizard.providers.tokens import estimate_usage
from uniwizard.types import BlindRequest, CallResult, Delta, Failure, Outcome, Usage

# How much of a streamed answer is held back before anything is forwarded.
HOLD_BACK_CHARS = 160


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request cleared to be sent: scrubbed, with how many identity matches were redacted."""

    request: BlindRequest
    scrubbed: int = 0


def local_failure(b: BackendConfig, outcome: Outcome, message: str) -> CallResult:
    """An attempt stopped before anything was sent."""
    return CallResult(backend=b.key, model=b.model, outcome=outcome, error_message=message)


def admit(
    b: BackendConfig, request: BlindRequest, guard: IdentityGuard | None
) -> Admitted | CallResult:
    """Scrub, then check modalities, tools, the output format and messages; a CallResult means
    nothing is sent."""
    scrubbed = 0
    if guard is not None:
        try:
            guarded = guard.apply(request)
        except IdentityLeak as leak:
            fields = ", ".join(leak.fields[:5])
            return local_failure(
                b, Outcome.IDENTITY_LEAK, f"identity material found in {fields}; nothing sent"
            )
        request, scrubbed = guarded.request, guarded.matches
    for a in request.attachments():
        if a.modality not in b.modalities:
            return local_failure(
                b,
                Outcome.BAD_REQUEST,
                f"backend {b.key} cannot take {a.media_type} attachments "
                f"(modalities: {', '.join(b.modalities)})",
            )
    if request.tools and not b.tools:
        return local_failure(b, Outcome.BAD_REQUEST, f"backend {b.key} does not support tools")
    if not can_return(b, request.response_format):
        assert request.response_format is not None
        return local_failure(
            b,
            Outcome.BAD_REQUEST,
            f"backend {b.key} cannot return {request.response_format.type.value} output"
            f" (output_formats: {', '.join(output_formats(b)) or 'none'})",
        )
    if not request.messages:
        return local_failure(b, Outcome.BAD_REQUEST, "the request has no messages")
    return Admitted(request, scrubbed)


def classify(
    b: BackendConfig,
    request: BlindRequest,
    answer: ParsedResponse | Failure,
    refusals: RefusalDetector,
    *,
    latency_ms: float,
    scrubbed: int,
    api_key: str | None,
) -> CallResult:
    """The attempt's result: its outcome class, usage and cost."""
    if isinstance(answer, Failure):
        result = _failed(b, request, answer)
    else:
        result = _answered(b, request, answer, refusals)
    result = replace(result, latency_ms=latency_ms, scrubbed=scrubbed)
    if api_key and api_key in result.error_message:
        result = replace(result, error_message=result.error_message.replace(api_key, "***"))
    return result


def _failed(b: BackendConfig, request: BlindRequest, failure: Failure) -> CallResult:
    # What a broken stream delivered was generated, and is billed: estimate it.
    usage = estimate_usage(request, failure.partial_text) if failure.partial_text else Usage()
    return CallResult(
        backend=b.key,
        model=b.model,
        outcome=failure.outcome,
        error_message=failure.message,
        http_status=failure.http_status,
        retry_after_s=failure.retry_after_s,
        usage=usage,
        cost_usd=price(b, usage),
        cost_source="estimated",
    )


def _answered(
    b: BackendConfig, request: BlindRequest, parsed: ParsedResponse, refusals: RefusalDetector
) -> CallResult:
    usage, source = parsed.usage, "provider"
    if usage is None:
        usage, source = estimate_usage(request, parsed.text, parsed.tool_calls), "estimated"
    outcome, message = Outcome.SUCCESS, ""
    if parsed.provider_refusal:
        outcome, message = Outcome.REFUSAL, parsed.refusal_detail or "provider refusal signal"
    elif not parsed.text.strip() and not parsed.tool_calls:
        outcome, message = Outcome.EMPTY, "the answer was empty"
    elif not parsed.tool_calls:
        verdict = refusals.detect(parsed.text)
        if verdict.is_refusal:
            outcome, message = Outcome.REFUSAL, f"semantic refusal ({verdict.rule})"
    return CallResult(
        backend=b.key,
        model=b.model,
        outcome=outcome,
        error_message=message,
        text=parsed.text,
        tool_calls=tuple(parsed.tool_calls),
        finish_reason=parsed.finish_reason,
        provider_finish_reason=parsed.raw_finish_reason,
        usage=usage,
        cost_usd=price(b, usage),
        cost_source=source,
        response_model=parsed.response_model,
        http_status=200,
    )


def refused_opening(text: str) -> ParsedResponse:
    """A stream stopped at its opening because the opening is a refusal (the rest is never
    read): judged as an answer of just that text."""
    return ParsedResponse(
        text=text,
        tool_calls=(),
        finish_reason=FINISH_REFUSAL,
        raw_finish_reason="",
        usage=None,
        response_model="",
        provider_refusal=False,
    )


class OpeningGate:
    """Holds a stream's deltas back until the opening is long enough to judge (or a tool call
    arrives), then lets everything through. ``refused`` holds the opening when it was judged a
    refusal; nothing held is ever forwarded then."""

    def __init__(self, refusals: RefusalDetector, hold_chars: int = HOLD_BACK_CHARS) -> None:
        self._refusals = refusals
        self._hold_chars = hold_chars
        self._held: list[Delta] = []
        self._chars = 0
        self.open = False
        self.refused: str | None = None

    def admit(self, delta: Delta) -> list[Delta]:
        """The deltas that may go out now."""
        if self.open:
            return [delta]
        self._held.append(delta)
        self._chars += len(delta.text)
        if self._chars < self._hold_chars and delta.tool_call is None:
            return []
        opening = "".join(d.text for d in self._held)
        if delta.tool_call is None and self._refusals.detect(opening).is_refusal:
            self.refused = opening
            return []
        self.open = True
        return self.release()

    def release(self) -> list[Delta]:
        """What is still held (a short answer that ended before the gate opened)."""
        held, self._held = self._held, []
        return held
