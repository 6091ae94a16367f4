"""The routing policy (``configs/routing.yaml``) as validated, precompiled, frozen data.

Everything a classification needs at request time is built here, once: all categories'
keywords in one index looked up word by word (:class:`KeywordIndex`), one compiled regex per
pattern (and one for its ``if_contains`` gate), the patterns in policy order and the categories
that have hard evidence. The file is read with :mod:`uniwizard.yamlcheck`, so a policy that
fails validation raises :class:`~uniwizard.yamlcheck.ConfigError` naming the file, the line,
the key path and what is wrong, e.g.::

    configs/routing.yaml:41: categories[3].prefer[1]: unknown backend 'claud' (known: claude, ...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from uniwizard.yamlcheck import (
    ConfigError,
    Entry,
    boolean,
    compose,
    integer,
    is_mapping,
    mapping,
    number,
    read_text,
    sequence,
    string,
)

__all__ = [
    "CategoryRule",
    "Evidence",
    "Keyword",
    "KeywordIndex",
    "Pattern",
    "Policy",
    "WordingScope",
    "load_policy",
    "parse_policy",
    "words_of",
]

_NAME_RX = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS = ("version", "default", "wording", "adapt", "categories")
_WORDING_KEYS = ("head_chars", "tail_chars", "tail_weight")
_CATEGORY_KEYS = ("name", "description", "when", "prefer", "private_only", "adapt")
_ADAPT_KEYS = ("weights", "min_count", "explore")
_WEIGHT_KEYS = ("quality", "latency", "cost")
MAX_EXPLORE = 0.5
_WHEN_KEYS = (
    "media_types",
    "private",
    "min_input_tokens",
    "max_latency_budget_ms",
    "keywords",
    "patterns",
)
_KEYWORD_KEYS = ("phrase", "weight")
_PATTERN_KEYS = ("regex", "weight", "label", "if_contains")


@dataclass(frozen=True, slots=True)
class Keyword:
    """A phrase matched on whole words, case-insensitively. Hyphens and other punctuation
    between words count as spaces ("trade-offs" = "trade offs"); a trailing ``*`` makes the
    last word a prefix ("analy*" matches analyze, analysis, analysing)."""

    phrase: str  # normalised: lower case, single spaces
    weight: float = 1.0
    words: tuple[str, ...] = ()  # the phrase as words (the last one without its "*")
    stem: bool = False  # the last word is a prefix


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression searched case-insensitively in the prompt. ``if_contains`` is a
    cheap gate: when given, the regex only runs if the lower-cased prompt contains one of
    these substrings (most prompts then cost no regex search at all)."""

    regex: str
    compiled: re.Pattern[str] = field(repr=False, compare=False)
    weight: float = 1.0
    label: str = ""
    if_contains: tuple[str, ...] = ()
    # the gate as one search (any of the substrings); None: no gate
    gate: re.Pattern[str] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a category looks for. Any one kind of evidence is enough for a match.

    Hard evidence: ``media_types``, ``private``, ``min_input_tokens``, ``max_latency_budget_ms``.
    Wording evidence (scored): ``keywords`` and ``patterns``.
    """

    media_types: tuple[str, ...] = ()  # lower-case prefixes, e.g. "image/"
    private: bool = False
    min_input_tokens: int = 0  # 0 = not used; matches when the estimate is above it
    max_latency_budget_ms: int = 0  # 0 = not used; matches when 0 < budget <= it
    keywords: tuple[Keyword, ...] = ()
    patterns: tuple[Pattern, ...] = ()

    @property
    def has_hard(self) -> bool:
        return bool(
            self.media_types or self.private or self.min_input_tokens or self.max_latency_budget_ms
        )

    @property
    def has_wording(self) -> bool:
        return bool(self.keywords or self.patterns)


@dataclass(frozen=True, slots=True)
class AdaptConfig:
    """Routing v2 settings (``adapt:``): see :mod:`router_svc.adapt`."""

    enabled: bool = False
    quality: float = 1.0  # weights
    latency: float = 0.1
    cost: float = 0.1
    min_count: int = 3  # ratings (quality) or answers (latency, cost) before evidence counts
    explore: float = 0.1  # the largest share of decisions that explore


OFF = AdaptConfig()  # adaptation off: v1's order exactly


@dataclass(frozen=True, slots=True)
class CategoryRule:
    name: str
    description: str
    when: Evidence
    prefer: tuple[str, ...]  # ordered backend keys: the chain before filtering
    private_only: bool = False  # only backends with private: true, also on fallback
    adapt: AdaptConfig = OFF  # routing v2 for this category (the global setting, overridden)


# (category position, keyword): candidates looked up by a prompt word
_Entry = tuple[int, Keyword]


@dataclass(frozen=True, slots=True)
class KeywordIndex:
    """All categories' keywords, indexed by their first word (exact phrases and multi-word
    stems) or by the first STEM_KEY letters of a one-word stem: one dict lookup per prompt
    word finds every candidate phrase. Also every category's patterns in policy order, and
    the positions of the categories with hard evidence."""

    exact: Mapping[str, tuple[_Entry, ...]]
    stems: Mapping[str, tuple[_Entry, ...]]
    patterns: tuple[tuple[int, Pattern], ...] = ()  # (category position, pattern)
    hard: tuple[int, ...] = ()  # positions of the categories with hard evidence


STEM_KEY = 3  # a one-word stem needs at least this many letters before its "*"
WORD_RX = re.compile(r"\w+")  # prompt and phrases are split into words alike


def words_of(text: str) -> list[str]:
    """Lower-case runs of word characters: any punctuation splits (what's = what s)."""
    return WORD_RX.findall(text.lower())


@dataclass(frozen=True, slots=True)
class WordingScope:
    """Which part of the prompt wording rules read: instructions come first (or last); the
    pasted material in between must not steer routing, and the bounded window keeps
    classification O(1) in prompt length."""

    head_chars: int = 400
    tail_chars: int = 200
    tail_weight: float = 0.5  # matches found only in the tail count this much


@dataclass(frozen=True, slots=True)
class Policy:
    path: str
    default: str
    categories: tuple[CategoryRule, ...]
    wording: WordingScope = field(default_factory=WordingScope)
    version: int = 1
    index: KeywordIndex = field(default_factory=lambda: KeywordIndex({}, {}), repr=False)
    adapt: AdaptConfig = OFF  # the global setting (each category has its own, resolved)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    def rule(self, name: str) -> CategoryRule:
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(name)


# --- loading ---------------------------------------------------------------------------------


def load_policy(path: str | Path, known_backends: Iterable[str] | None = None) -> Policy:
    """Read, validate and compile a policy file. ``known_backends``: the configured backend
    keys (every ``prefer`` entry must be one); None skips that check."""
    p = str(path)
    return parse_policy(read_text(p), p, known_backends)


def parse_policy(
    text: str, path: str = "<routing policy>", known_backends: Iterable[str] | None = None
) -> Policy:
    """Validate and compile policy YAML text (``path`` is only used in error messages)."""
    root = compose(text, path)
    if root is None:
        raise ConfigError(path, "", "the file is empty")
    known = None if known_backends is None else tuple(known_backends)
    return _Builder(path, known).policy(root)


def _items(m: dict[str, Entry], key: str) -> list[Entry]:
    """The list under ``key``, empty when the key is absent."""
    return sequence(m[key]) if key in m else []


class _Builder:
    def __init__(self, path: str, known: tuple[str, ...] | None) -> None:
        self.path = path
        self.known = known

    def policy(self, root: Entry) -> Policy:
        top = mapping(root, _TOP_KEYS)
        version = integer(top["version"], minimum=1) if "version" in top else 1
        if version != 1:
            raise top["version"].error(f"unsupported version {version} (supported: 1)")
        if "categories" not in top:
            raise root.missing("categories", "missing (an ordered list of categories)")
        items = sequence(top["categories"])
        if not items:
            raise top["categories"].error("must list at least one category")
        if "default" not in top:
            raise root.missing("default", "missing (the category for tasks no rule matches)")
        default = string(top["default"])
        adapt = self.adapt(top["adapt"], OFF) if "adapt" in top else OFF
        categories: list[CategoryRule] = []
        for item in items:
            categories.append(self.category(item, default, [c.name for c in categories], adapt))
        names = [c.name for c in categories]
        if default not in names:
            raise top["default"].error(
                f"'{default}' is not a category (categories: {', '.join(names)})"
            )
        wording = self.wording(top["wording"]) if "wording" in top else WordingScope()
        index = _build_index(categories)
        return Policy(self.path, default, tuple(categories), wording, version, index, adapt)

    def adapt(self, entry: Entry, base: AdaptConfig) -> AdaptConfig:
        """``adapt: off`` / ``on`` / a mapping of settings over ``base`` (which it turns on)."""
        if not is_mapping(entry):
            return replace(base, enabled=boolean(entry))
        m = mapping(entry, _ADAPT_KEYS)
        changes: dict[str, Any] = {"enabled": True}
        if "weights" in m:
            weights = mapping(m["weights"], _WEIGHT_KEYS)
            for key, value in weights.items():
                changes[key] = number(value, non_negative=True)
        if "min_count" in m:
            changes["min_count"] = integer(m["min_count"], minimum=1)
        if "explore" in m:
            explore = number(m["explore"], non_negative=True)
            if explore > MAX_EXPLORE:
                raise m["explore"].error(
                    f"is the share of decisions that explore, at most {MAX_EXPLORE}, got {explore}"
                )
            changes["explore"] = explore
        config = replace(base, **changes)
        if not (config.quality or config.latency or config.cost):
            raise (m.get("weights") or entry).error("weights must not all be 0")
        return config

    def wording(self, entry: Entry) -> WordingScope:
        m = mapping(entry, _WORDING_KEYS)
        d = WordingScope()
        head = integer(m["head_chars"], minimum=1) if "head_chars" in m else d.head_chars
        tail = integer(m["tail_chars"], minimum=0) if "tail_chars" in m else d.tail_chars
        for key, n in (("head_chars", head), ("tail_chars", tail)):
            if n > 20_000:
                raise m[key].error(f"must be <= 20000 (keeps routing fast), got {n}")
        tail_weight = (
            number(m["tail_weight"], positive=True) if "tail_weight" in m else d.tail_weight
        )
        return WordingScope(head, tail, tail_weight)

    def category(
        self, item: Entry, default: str, taken: list[str], adapt: AdaptConfig
    ) -> CategoryRule:
        m = mapping(item, _CATEGORY_KEYS)
        if "name" not in m:
            raise item.error("missing key 'name'")
        name = string(m["name"])
        if not _NAME_RX.match(name):
            raise m["name"].error(f"'{name}' must be lower_snake_case")
        if name in taken:
            raise m["name"].error(f"duplicate category '{name}'")
        description = string(m["description"]) if "description" in m else name
        when = self.evidence(m["when"]) if "when" in m else Evidence()
        if not (when.has_hard or when.has_wording) and name != default:
            problem = f"category '{name}' has no evidence and is not the default"
            raise m["when"].error(problem) if "when" in m else item.missing("when", problem)
        if "prefer" not in m:
            raise item.error(f"category '{name}': missing key 'prefer'")
        prefer = self.prefer(m["prefer"])
        private_only = boolean(m["private_only"]) if "private_only" in m else False
        if "adapt" in m:
            adapt = self.adapt(m["adapt"], adapt)
        return CategoryRule(name, description.strip(), when, prefer, private_only, adapt)

    def prefer(self, entry: Entry) -> tuple[str, ...]:
        items = sequence(entry)
        if not items:
            raise entry.error("must name at least one backend")
        out: list[str] = []
        for item in items:
            key = string(item)
            if self.known is not None and key not in self.known:
                known = ", ".join(sorted(self.known)) or "none configured"
                raise item.error(f"unknown backend '{key}' (known: {known})")
            if key in out:
                raise item.error(f"backend '{key}' listed twice")
            out.append(key)
        return tuple(out)

    def evidence(self, entry: Entry) -> Evidence:
        m = mapping(entry, _WHEN_KEYS)
        media: list[str] = []
        for item in _items(m, "media_types"):
            mt = string(item).strip().lower()
            if "/" not in mt:
                raise item.error(f"'{mt}' is not a media type or prefix like image/")
            media.append(mt)
        private = boolean(m["private"]) if "private" in m else False
        min_tokens = integer(m["min_input_tokens"], minimum=1) if "min_input_tokens" in m else 0
        max_latency = 0
        if "max_latency_budget_ms" in m:
            max_latency = integer(m["max_latency_budget_ms"], minimum=1)
        keywords = self.keywords(_items(m, "keywords"))
        patterns = self.patterns(_items(m, "patterns"))
        return Evidence(tuple(media), private, min_tokens, max_latency, keywords, patterns)

    def keywords(self, items: list[Entry]) -> tuple[Keyword, ...]:
        out: list[Keyword] = []
        seen: set[str] = set()
        for item in items:
            if is_mapping(item):
                m = mapping(item, _KEYWORD_KEYS)
                if "phrase" not in m:
                    raise item.error("missing key 'phrase'")
                phrase = string(m["phrase"])
                weight = number(m["weight"], positive=True) if "weight" in m else 1.0
            else:
                phrase, weight = string(item), 1.0
            norm = " ".join(phrase.lower().split())
            stem = norm.endswith("*")
            words = tuple(words_of(norm))
            if not words or (stem and len(words) == 1 and len(words[0]) < STEM_KEY):
                raise item.error(
                    f"'{phrase}' needs a word (a one-word stem at least {STEM_KEY} letters)"
                )
            if "*" in norm[:-1] or (stem and not norm[-2].isalnum()):
                raise item.error(f"'{phrase}': '*' may only end the last word")
            key = " ".join(words) + ("*" if stem else "")
            if key in seen:
                raise item.error(f"keyword '{norm}' listed twice")
            seen.add(key)
            out.append(Keyword(norm, weight, words, stem))
        return tuple(out)

    def patterns(self, items: list[Entry]) -> tuple[Pattern, ...]:
        out: list[Pattern] = []
        for item in items:
            where = item  # the regex's own entry, for problems with the regex
            if is_mapping(item):
                m = mapping(item, _PATTERN_KEYS)
                if "regex" not in m:
                    raise item.error("missing key 'regex'")
                source = string(m["regex"])
                weight = number(m["weight"], positive=True) if "weight" in m else 1.0
                label = string(m["label"]) if "label" in m else ""
                gate = tuple(string(g).lower() for g in _items(m, "if_contains"))
                where = m["regex"]
            else:
                source, weight, label, gate = string(item), 1.0, "", ()
            try:
                compiled = re.compile(source, re.IGNORECASE)
            except re.error as exc:
                raise where.error(f"bad regex {source!r}: {exc}") from exc
            if compiled.match(""):
                raise where.error(f"regex {source!r} matches the empty string")
            gate_rx = re.compile("|".join(map(re.escape, gate))) if gate else None
            out.append(Pattern(source, compiled, weight, label, gate, gate_rx))
        return tuple(out)


def _build_index(categories: list[CategoryRule]) -> KeywordIndex:
    exact: dict[str, list[_Entry]] = {}
    stems: dict[str, list[_Entry]] = {}
    for pos, rule in enumerate(categories):
        for kw in rule.when.keywords:
            if kw.stem and len(kw.words) == 1:
                stems.setdefault(kw.words[0][:STEM_KEY], []).append((pos, kw))
            else:
                exact.setdefault(kw.words[0], []).append((pos, kw))
    # longest phrases first, so the first match at a position is the longest
    return KeywordIndex(
        {k: tuple(sorted(v, key=lambda e: -len(e[1].words))) for k, v in exact.items()},
        {k: tuple(v) for k, v in stems.items()},
        tuple((pos, p) for pos, rule in enumerate(categories) for p in rule.when.patterns),
        tuple(pos for pos, rule in enumerate(categories) if rule.when.has_hard),
    )
