"""Classify a task into a routing category, with the evidence in plain words.

Three passes over the policy's categories, in the policy's order:

1. Hard evidence (attachments' media types, the private flag, the input-token estimate, the
   latency budget): the first category whose hard evidence holds wins outright.
2. Wording: every category with keywords or patterns is scored on the prompt (sum of the
   weights of the distinct phrases and patterns that match); the best score wins and the
   category order only breaks ties. Scoring rather than "first keyword wins" keeps
   "Summarize the code review comments" (summarise: knowledge) apart from "Review this diff"
   (review: reasoning).
3. Nothing matched: the policy's default, with the reason "no rule matched".

Only a bounded window of the prompt is read for wording (``Policy.wording``), so the cost of a
classification does not grow with pasted documents, and pasted material does not steer it.
"""

from __future__ import annotations

from dataclasses import dataclass

from router_svc.policy import STEM_KEY, WORD_RX, CategoryRule, Keyword, Policy
from uniwizard.providers.tokens import estimate_task_tokens
from uniwizard.types import Task

__all__ = ["Classification", "Reason", "classify", "requested"]

_MAX_EVIDENCE = 40  # characters of an attachment name shown in a reason
_MAX_SPAN = 24  # a pattern match longer than this is shown by the pattern's label


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str  # the category (or "default") this reason speaks for
    evidence: str  # plain words; short matched phrases only, never the prompt

    def __str__(self) -> str:
        return f"{self.rule}: {self.evidence}"


@dataclass(frozen=True, slots=True)
class Classification:
    category: str
    reasons: tuple[Reason, ...]
    scores: tuple[tuple[str, float], ...] = ()  # wording scores > 0, in policy order


def classify(task: Task, policy: Policy, estimate: int | None = None) -> Classification:
    """The task's category and why. ``estimate``: input tokens, computed if not given."""
    if estimate is None:
        estimate = estimate_task_tokens(task)
    rules = policy.categories
    for pos in policy.index.hard:
        reason = _hard_evidence(rules[pos], task, estimate)
        if reason is not None:
            return Classification(rules[pos].name, (reason,))
    return _by_wording(task.prompt, policy)


def _hard_evidence(rule: CategoryRule, task: Task, estimate: int) -> Reason | None:
    when = rule.when
    if when.media_types:
        for attachment in task.request.attachments():
            media_type = attachment.media_type.lower()
            if media_type.startswith(when.media_types):
                name = _short(attachment.name) or "(unnamed)"
                return Reason(rule.name, f"attachment {name} is {media_type}")
    if when.private and task.private:
        return Reason(rule.name, "the task is marked private")
    if when.min_input_tokens and estimate > when.min_input_tokens:
        return Reason(rule.name, f"estimated {estimate:,} input tokens > {when.min_input_tokens:,}")
    budget = task.latency_budget_ms
    if when.max_latency_budget_ms and 0 < budget <= when.max_latency_budget_ms:
        return Reason(
            rule.name, f"latency budget {budget:,} ms <= {when.max_latency_budget_ms:,} ms"
        )
    return None


def _by_wording(prompt: str, policy: Policy) -> Classification:
    scope = policy.wording
    if len(prompt) <= scope.head_chars + scope.tail_chars:
        parts: tuple[tuple[str, float], ...] = ((prompt, 1.0),)
    else:
        head, tail = prompt[: scope.head_chars], prompt[len(prompt) - scope.tail_chars :]
        parts = ((head, 1.0), (tail, scope.tail_weight))

    rules = policy.categories
    index = policy.index
    hits: dict[int, dict[str, float]] = {}  # category position -> shown phrase -> weight
    exact, stems = index.exact, index.stems
    for text, factor in parts:
        low = text.lower()
        words = WORD_RX.findall(low)
        covered = [0] * len(rules)  # per category: words before this index are used up
        # one cheap pass finds the words some phrase starts with; most prompt words are not
        for i in [i for i, w in enumerate(words) if w in exact or w[:STEM_KEY] in stems]:
            word = words[i]
            for pos, kw in exact.get(word, ()) + stems.get(word[:STEM_KEY], ()):
                # the longest phrase at a word counts; its words count for nothing else
                if i < covered[pos] or not _match_at(words, i, kw):
                    continue
                covered[pos] = i + len(kw.words)
                shown = " ".join(words[i : covered[pos]]) if kw.stem else kw.phrase
                _add(hits.setdefault(pos, {}), shown, kw.weight * factor)
        for pos, pattern in index.patterns:
            if pattern.gate is not None and pattern.gate.search(low) is None:
                continue
            m = pattern.compiled.search(text)
            if m is not None:
                _add(
                    hits.setdefault(pos, {}),
                    _shown(m.group(0), pattern.label),
                    pattern.weight * factor,
                )

    if not hits:
        return Classification(policy.default, (Reason("default", "no rule matched"),))
    positions = sorted(hits)  # policy order
    scores = tuple((rules[p].name, sum(hits[p].values())) for p in positions)
    best = 0
    for k in range(1, len(scores)):  # scores are in policy order: ties keep the earlier one
        if scores[k][1] > scores[best][1]:
            best = k
    name, score = scores[best]
    phrases = hits[positions[best]]
    reasons = [Reason(name, "wording: " + ", ".join(f"'{p}'" for p in phrases))]
    others = [s for k, s in enumerate(scores) if k != best]
    if others:
        other, other_score = max(others, key=lambda x: x[1])
        if other_score == score:
            how = f"tied with {other} at {score:g}; {name} comes first in the policy"
        else:
            how = f"score {score:g} beat {other} {other_score:g}"
        reasons.append(Reason(name, how))
    return Classification(name, tuple(reasons), scores)


def _match_at(words: list[str], i: int, kw: Keyword) -> bool:
    n = len(kw.words)
    if n == 1:
        return not kw.stem or words[i].startswith(kw.words[0])
    if i + n > len(words):
        return False
    for k in range(1, n - 1):
        if words[i + k] != kw.words[k]:
            return False
    last = words[i + n - 1]
    return last.startswith(kw.words[-1]) if kw.stem else last == kw.words[-1]


def _add(hits: dict[str, float], shown: str, weight: float) -> None:
    if weight > hits.get(shown, 0.0):
        hits[shown] = weight


def _shown(matched: str, label: str) -> str:
    """A pattern is shown by its label: what it matched is the user's text, which must not reach
    reasons (they go into spans and logs). Only an unlabelled short match is shown as it is."""
    if label:
        return label
    text = " ".join(matched.lower().split())
    return text if len(text) <= _MAX_SPAN else text[: _MAX_SPAN - 1] + "…"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_EVIDENCE else text[: _MAX_EVIDENCE - 1] + "…"


def requested(category: str, policy: Policy) -> Classification:
    """The classification when the caller names the category itself (``DispatchRequest.category``):
    that category's chain, with fallback, and no reading of the task. The hard constraints of the
    chain (privacy, modality, context, budgets, health) still apply. Raises ``KeyError`` for a
    name the policy does not have."""
    policy.rule(category)
    return Classification(category, (Reason(category, "category requested by the caller"),))
