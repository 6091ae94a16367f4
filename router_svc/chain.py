"""Build the ranked fallback chain for a classified task, and say why each backend was skipped.

Candidates: the category's ``prefer`` list, then every other configured backend in config
order (so a task is never stranded while something able is up). Each candidate is then held
against the hard constraints, in this order, and the first one it fails is its ``Skip``:

    not_configured     named by the policy, absent from the backend configuration
    not_private        the task is private (or the category is private_only) and the backend
                       is not marked ``private: true``
    modality           an attachment's modality is not in the backend's ``modalities``
    no_tools           the request carries tools and the backend has ``tools: false``
    no_output_format   the request wants structured output (json_object, json_schema) the
                       backend cannot return (``output_formats``, uniwizard.providers.formats)
    context_too_small  estimate + output reservation > ``max_context``
    over_cost_ceiling  estimated cost of the call > ``task.max_cost_usd`` (when > 0)
    over_budget        the call could break the backend's (or the overall) daily or monthly
                       budget: spent so far plus its upper estimate (see router_svc.budget)
    disabled           switched off by an operator (or ``enabled: false`` with no health yet)
    down               down (auth failure, missing key, unreachable)
    cooling_down       its circuit breaker is open

Capability comes before health so that an explanation says what a backend can never do before
what it cannot do right now. Unknown, healthy and half-open backends stay in the chain; a
backend missing from ``health`` counts as unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from router_svc.budget import BudgetCheck
from router_svc.classify import Classification, Reason
from router_svc.policy import Policy
from uniwizard.config_types import BackendConfig
from uniwizard.providers.formats import can_return, output_formats
from uniwizard.providers.pricing import price
from uniwizard.types import Attachment, BackendHealth, HealthState, Task, Usage

__all__ = [
    "SKIP_REASONS",
    "ChainWalk",
    "Decision",
    "Skip",
    "build_chain",
    "fits_context",
    "output_reservation",
]

SKIP_REASONS = (
    "not_configured",
    "not_private",
    "modality",
    "no_tools",
    "no_output_format",
    "context_too_small",
    "over_cost_ceiling",
    "over_budget",
    "disabled",
    "down",
    "cooling_down",
)


@dataclass(frozen=True, slots=True)
class Skip:
    backend: str
    reason: str  # one of SKIP_REASONS
    detail: str  # plain words, e.g. "needs ~41,200 tokens, holds 8,192"

    def __str__(self) -> str:
        return f"{self.backend}: {self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Decision:
    backend: str | None  # chain[0], or None when nothing can take the task
    category: str
    chain: tuple[str, ...]
    reasons: tuple[Reason, ...]
    skipped: tuple[Skip, ...]
    estimated_input_tokens: int


def output_reservation(backend: BackendConfig, max_output: int) -> int:
    """Output tokens to reserve: the request's cap, else the backend's default cap."""
    return max_output if max_output > 0 else backend.max_output_tokens


def fits_context(backend: BackendConfig, estimate: int, max_output: int) -> bool:
    """Whether ``estimate`` input tokens plus the output reservation fit the context window.
    ``max_output`` <= 0 means the backend's own ``max_output_tokens``."""
    return estimate + output_reservation(backend, max_output) <= backend.max_context


class ChainWalk:
    """A decision's chain in order, as a dispatch tries it. After a context-window failure
    (:meth:`require_larger_than`) only backends with a larger context window that hold the
    request remain; the chain itself is never rewritten."""

    def __init__(self, chain: tuple[str, ...], estimate: int) -> None:
        self._chain = chain
        self._estimate = estimate
        self._position = 0
        self._above = -1  # the context window the remaining backends must exceed (-1: none)

    def next(self, backends: Mapping[str, BackendConfig]) -> str | None:
        """The next backend to try, or None when the chain is exhausted."""
        while self._position < len(self._chain):
            key = self._chain[self._position]
            self._position += 1
            b = backends.get(key)
            if self._above < 0 or (
                b is not None and b.max_context > self._above and fits_context(b, self._estimate, 0)
            ):
                return key
        return None

    def require_larger_than(self, key: str, backends: Mapping[str, BackendConfig]) -> None:
        """From now on, only backends whose context window is larger than ``key``'s."""
        b = backends.get(key)
        self._above = max(self._above, b.max_context if b is not None else 0)


def build_chain(
    task: Task,
    classification: Classification,
    policy: Policy,
    backends: Mapping[str, BackendConfig],
    health: Mapping[str, BackendHealth],
    *,
    estimate: int,
    now: float,
    budget: BudgetCheck | None = None,
) -> Decision:
    """The ordered, filtered chain for ``task`` and the reason for every skipped backend."""
    rule = policy.rule(classification.category)
    candidates = list(rule.prefer)
    candidates.extend(key for key in backends if key not in rule.prefer)
    private = task.private or rule.private_only

    chain: list[str] = []
    skipped: list[Skip] = []
    attachments = task.request.attachments()
    for key in candidates:
        config = backends.get(key)
        if config is None:
            skipped.append(Skip(key, "not_configured", "named by the policy, not configured"))
            continue
        skip = (
            _constraint(task, attachments, config, estimate, private)
            or _budget(task, config, estimate, budget)
            or _health(config, health.get(key), now)
        )
        if skip is None:
            chain.append(key)
        else:
            skipped.append(skip)

    return Decision(
        backend=chain[0] if chain else None,
        category=classification.category,
        chain=tuple(chain),
        reasons=classification.reasons,
        skipped=tuple(skipped),
        estimated_input_tokens=estimate,
    )


def _constraint(
    task: Task,
    attachments: tuple[Attachment, ...],
    b: BackendConfig,
    estimate: int,
    private: bool,
) -> Skip | None:
    if private and not b.private:
        return Skip(b.key, "not_private", "the task is private; backend is not private: true")
    for attachment in attachments:
        if attachment.modality not in b.modalities:
            return Skip(
                b.key,
                "modality",
                f"cannot take {attachment.modality} ({attachment.media_type}); "
                f"takes {', '.join(b.modalities)}",
            )
    tools = task.request.tools
    if tools and not b.tools:
        n = len(tools)
        return Skip(b.key, "no_tools", f"the request has {n} tool{'s' * (n != 1)}; no tool support")
    wanted = task.request.response_format
    if not can_return(b, wanted):
        assert wanted is not None
        can = ", ".join(output_formats(b)) or "none"
        return Skip(b.key, "no_output_format", f"cannot return {wanted.type.value} (can: {can})")
    max_output = task.request.max_output_tokens
    if not fits_context(b, estimate, max_output):
        out = output_reservation(b, max_output)
        return Skip(
            b.key,
            "context_too_small",
            f"needs ~{estimate + out:,} tokens ({estimate:,} in + {out:,} out), "
            f"holds {b.max_context:,}",
        )
    if task.max_cost_usd > 0:
        cost = upper_cost(b, estimate, max_output)
        if cost > task.max_cost_usd:
            return Skip(
                b.key,
                "over_cost_ceiling",
                f"estimated ${cost:.4f} > ceiling ${task.max_cost_usd:.4f}",
            )
    return None


def upper_cost(b: BackendConfig, estimate: int, max_output: int) -> float:
    """What a call can cost at most: the input estimate and the full output reservation."""
    return price(b, Usage(estimate, output_reservation(b, max_output)))


def _budget(task: Task, b: BackendConfig, estimate: int, check: BudgetCheck | None) -> Skip | None:
    if check is None or not check.capped(b.key):
        return None
    why = check.over(b.key, upper_cost(b, estimate, task.request.max_output_tokens))
    return Skip(b.key, "over_budget", why) if why else None


def _health(b: BackendConfig, h: BackendHealth | None, now: float) -> Skip | None:
    if h is None:
        if not b.enabled:
            return Skip(b.key, "disabled", "disabled in the configuration (enabled: false)")
        return None
    if h.state is HealthState.DISABLED:
        why = f": {h.disabled_reason}" if h.disabled_reason else ""
        return Skip(b.key, "disabled", f"disabled by {h.disabled_by or 'an operator'}{why}")
    if h.state is HealthState.DOWN:
        return Skip(b.key, "down", f"down: {h.reason or 'no reason given'}")
    if h.state is HealthState.COOLING_DOWN:
        remaining = h.cooldown_until - now
        left = max(0, math.ceil(remaining)) if math.isfinite(remaining) else 0
        why = h.reason or (
            f"{h.failures_in_window} failures in {b.failure_window:g} s"
            if h.failures_in_window
            else "circuit breaker open"
        )
        return Skip(b.key, "cooling_down", f"cooling down, {left} s left: {why}")
    return None
