"""The routing policy (``configs/routing.yaml``) as validated, precompiled, frozen data.

Everything a classification needs at request time is compiled here, once: one case-insensitive
alternation per category for its keywords and one compiled regex per pattern. A policy that
fails validation raises ``PolicyError`` naming the file, the line when known, the key path and
what is wrong, e.g.::

    configs/routing.yaml:41: categories[3].prefer[1]: unknown backend 'claud' (known: claude, ...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CategoryRule",
    "Evidence",
    "Keyword",
    "KeywordIndex",
    "Pattern",
    "Policy",
    "PolicyError",
    "WordingScope",
    "load_policy",
    "parse_policy",
    "words_of",
]

_NAME_RX = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS = ("version", "default", "wording", "categories")
_WORDING_KEYS = ("head_chars", "tail_chars", "tail_weight")
_CATEGORY_KEYS = ("name", "description", "when", "prefer", "private_only")
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


class PolicyError(ValueError):
    """A routing policy that cannot be used. ``str()`` is one line: file, key path, problem."""

    def __init__(self, path: str, key_path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.key_path = key_path
        self.message = message
        self.line = line
        where = f"{path}:{line}" if line else path
        text = f"{where}: {key_path}: {message}" if key_path else f"{where}: {message}"
        if not text.isprintable():  # keys and values quoted from the file: keep one line
            text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        super().__init__(text)


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
class CategoryRule:
    name: str
    description: str
    when: Evidence
    prefer: tuple[str, ...]  # ordered backend keys: the chain before filtering
    private_only: bool = False  # only backends with private: true, also on fallback


# (category position, keyword): candidates looked up by a prompt word
_Entry = tuple[int, Keyword]


@dataclass(frozen=True, slots=True)
class KeywordIndex:
    """All categories' keywords, indexed by their first word (exact phrases and multi-word
    stems) or by the first STEM_KEY letters of a one-word stem: one dict lookup per prompt
    word finds every candidate phrase."""

    exact: Mapping[str, tuple[_Entry, ...]]
    stems: Mapping[str, tuple[_Entry, ...]]


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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(p, "", f"cannot read: {exc.strerror or exc}") from exc
    return parse_policy(text, p, known_backends)


def parse_policy(
    text: str, path: str = "<routing policy>", known_backends: Iterable[str] | None = None
) -> Policy:
    """Validate and compile policy YAML text (``path`` is only used in error messages)."""
    try:
        lines = _line_index(text, path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["error"])[0]
        raise PolicyError(path, "", f"invalid YAML: {problem}", line) from exc
    except RecursionError:
        raise PolicyError(path, "", "invalid YAML: nested too deeply or recursive") from None
    except PolicyError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # a bad tagged scalar: !!int abc
        raise PolicyError(path, "", f"invalid YAML: {exc}") from None
    known = None if known_backends is None else tuple(known_backends)
    return _Builder(path, lines, known).policy(data)


def _line_index(text: str, path: str) -> dict[str, int]:
    """key path -> 1-based line, from the YAML node tree; also rejects duplicate keys."""
    index: dict[str, int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    seen_nodes: set[int] = set()  # aliases: walk each node once (no loops, no exponential walks)

    def walk(node: yaml.Node, kp: str) -> None:
        index.setdefault(kp, node.start_mark.line + 1)
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for knode, vnode in node.value:
                key = str(knode.value)
                sub = f"{kp}.{key}" if kp else key
                if key in seen:
                    raise PolicyError(path, sub, "duplicate key", knode.start_mark.line + 1)
                seen.add(key)
                index[sub] = knode.start_mark.line + 1
                walk(vnode, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{kp}[{i}]")

    if root is not None:
        walk(root, "")
    return index


class _Builder:
    def __init__(self, path: str, lines: dict[str, int], known: tuple[str, ...] | None) -> None:
        self.path = path
        self.lines = lines
        self.known = known

    def fail(self, kp: str, message: str) -> PolicyError:
        return PolicyError(self.path, kp, message, self.lines.get(kp))

    # typed getters -----------------------------------------------------------------------

    def mapping(self, value: Any, kp: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(kp, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                sub = f"{kp}.{key}" if kp else str(key)
                raise self.fail(sub, f"unknown key '{key}' (allowed: {', '.join(allowed)})")
        return value

    def seq(self, value: Any, kp: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(kp, f"expected a list, got {_kind(value)}")
        return value

    def string(self, value: Any, kp: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(kp, f"expected a non-empty string, got {_kind(value)}")
        return value

    def integer(self, value: Any, kp: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(kp, f"expected an integer, got {_kind(value)}")
        if value < minimum:
            raise self.fail(kp, f"must be >= {minimum}, got {value}")
        return value

    def number(self, value: Any, kp: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(kp, f"expected a number, got {_kind(value)}")
        if not value > 0:
            raise self.fail(kp, f"must be > 0, got {value}")
        return float(value)

    def boolean(self, value: Any, kp: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(kp, f"expected true or false, got {_kind(value)}")
        return value

    # the document ------------------------------------------------------------------------

    def policy(self, data: Any) -> Policy:
        if data is None:
            raise self.fail("", "the file is empty")
        top = self.mapping(data, "", _TOP_KEYS)
        version = self.integer(top.get("version", 1), "version")
        if version != 1:
            raise self.fail("version", f"unsupported version {version} (supported: 1)")
        if "categories" not in top:
            raise self.fail("categories", "missing (an ordered list of categories)")
        raw = self.seq(top["categories"], "categories")
        if not raw:
            raise self.fail("categories", "must list at least one category")
        if "default" not in top:
            raise self.fail("default", "missing (the category for tasks no rule matches)")
        default = self.string(top["default"], "default")
        categories: list[CategoryRule] = []
        for i, item in enumerate(raw):
            rule = self.category(item, f"categories[{i}]", default)
            if any(c.name == rule.name for c in categories):
                raise self.fail(f"categories[{i}].name", f"duplicate category '{rule.name}'")
            categories.append(rule)
        names = [c.name for c in categories]
        if default not in names:
            raise self.fail(
                "default", f"'{default}' is not a category (categories: {', '.join(names)})"
            )
        wording = self.wording(top.get("wording", {}), "wording")
        index = _build_index(categories)
        return Policy(self.path, default, tuple(categories), wording, version, index)

    def wording(self, value: Any, kp: str) -> WordingScope:
        m = self.mapping(value, kp, _WORDING_KEYS)
        d = WordingScope()
        head = self.integer(m.get("head_chars", d.head_chars), f"{kp}.head_chars")
        tail = self.integer(m.get("tail_chars", d.tail_chars), f"{kp}.tail_chars", 0)
        for key, n in (("head_chars", head), ("tail_chars", tail)):
            if n > 20_000:
                raise self.fail(f"{kp}.{key}", f"must be <= 20000 (keeps routing fast), got {n}")
        tail_weight = self.number(m.get("tail_weight", d.tail_weight), f"{kp}.tail_weight")
        return WordingScope(head, tail, tail_weight)

    def category(self, value: Any, kp: str, default: str) -> CategoryRule:
        m = self.mapping(value, kp, _CATEGORY_KEYS)
        if "name" not in m:
            raise self.fail(kp, "missing key 'name'")
        name = self.string(m["name"], f"{kp}.name")
        if not _NAME_RX.match(name):
            raise self.fail(f"{kp}.name", f"'{name}' must be lower_snake_case")
        description = self.string(m.get("description", name), f"{kp}.description")
        when = self.evidence(m.get("when", {}), f"{kp}.when")
        if not (when.has_hard or when.has_wording) and name != default:
            raise self.fail(
                f"{kp}.when", f"category '{name}' has no evidence and is not the default"
            )
        if "prefer" not in m:
            raise self.fail(kp, f"category '{name}': missing key 'prefer'")
        prefer = self.prefer(m["prefer"], f"{kp}.prefer")
        private_only = self.boolean(m.get("private_only", False), f"{kp}.private_only")
        return CategoryRule(name, description.strip(), when, prefer, private_only)

    def prefer(self, value: Any, kp: str) -> tuple[str, ...]:
        items = self.seq(value, kp)
        if not items:
            raise self.fail(kp, "must name at least one backend")
        out: list[str] = []
        for i, item in enumerate(items):
            key = self.string(item, f"{kp}[{i}]")
            if self.known is not None and key not in self.known:
                known = ", ".join(sorted(self.known)) or "none configured"
                raise self.fail(f"{kp}[{i}]", f"unknown backend '{key}' (known: {known})")
            if key in out:
                raise self.fail(f"{kp}[{i}]", f"backend '{key}' listed twice")
            out.append(key)
        return tuple(out)

    def evidence(self, value: Any, kp: str) -> Evidence:
        m = self.mapping(value, kp, _WHEN_KEYS)
        media: list[str] = []
        for i, item in enumerate(self.seq(m.get("media_types", []), f"{kp}.media_types")):
            mt = self.string(item, f"{kp}.media_types[{i}]").strip().lower()
            if "/" not in mt:
                raise self.fail(
                    f"{kp}.media_types[{i}]", f"'{mt}' is not a media type or prefix like image/"
                )
            media.append(mt)
        private = self.boolean(m.get("private", False), f"{kp}.private")
        min_tokens = 0
        if "min_input_tokens" in m:
            min_tokens = self.integer(m["min_input_tokens"], f"{kp}.min_input_tokens")
        max_latency = 0
        if "max_latency_budget_ms" in m:
            max_latency = self.integer(m["max_latency_budget_ms"], f"{kp}.max_latency_budget_ms")
        keywords = self.keywords(m.get("keywords", []), f"{kp}.keywords")
        patterns = self.patterns(m.get("patterns", []), f"{kp}.patterns")
        return Evidence(tuple(media), private, min_tokens, max_latency, keywords, patterns)

    def keywords(self, value: Any, kp: str) -> tuple[Keyword, ...]:
        out: list[Keyword] = []
        seen: set[str] = set()
        for i, item in enumerate(self.seq(value, kp)):
            ikp = f"{kp}[{i}]"
            if isinstance(item, dict):
                m = self.mapping(item, ikp, _KEYWORD_KEYS)
                if "phrase" not in m:
                    raise self.fail(ikp, "missing key 'phrase'")
                phrase = self.string(m["phrase"], f"{ikp}.phrase")
                weight = self.number(m.get("weight", 1.0), f"{ikp}.weight")
            else:
                phrase, weight = self.string(item, ikp), 1.0
            norm = " ".join(phrase.lower().split())
            stem = norm.endswith("*")
            words = tuple(words_of(norm))
            if not words or (stem and len(words) == 1 and len(words[0]) < STEM_KEY):
                raise self.fail(
                    ikp, f"'{phrase}' needs a word (a one-word stem at least {STEM_KEY} letters)"
                )
            if "*" in norm[:-1] or (stem and not norm[-2].isalnum()):
                raise self.fail(ikp, f"'{phrase}': '*' may only end the last word")
            key = " ".join(words) + ("*" if stem else "")
            if key in seen:
                raise self.fail(ikp, f"keyword '{norm}' listed twice")
            seen.add(key)
            out.append(Keyword(norm, weight, words, stem))
        return tuple(out)

    def patterns(self, value: Any, kp: str) -> tuple[Pattern, ...]:
        out: list[Pattern] = []
        for i, item in enumerate(self.seq(value, kp)):
            ikp = f"{kp}[{i}]"
            if isinstance(item, dict):
                m = self.mapping(item, ikp, _PATTERN_KEYS)
                if "regex" not in m:
                    raise self.fail(ikp, "missing key 'regex'")
                source = self.string(m["regex"], f"{ikp}.regex")
                weight = self.number(m.get("weight", 1.0), f"{ikp}.weight")
                label = self.string(m["label"], f"{ikp}.label") if "label" in m else ""
                gate = tuple(
                    self.string(g, f"{ikp}.if_contains[{k}]").lower()
                    for k, g in enumerate(self.seq(m.get("if_contains", []), f"{ikp}.if_contains"))
                )
                ikp = f"{ikp}.regex"
            else:
                source, weight, label, gate = self.string(item, ikp), 1.0, "", ()
            try:
                compiled = re.compile(source, re.IGNORECASE)
            except re.error as exc:
                raise self.fail(ikp, f"bad regex {source!r}: {exc}") from exc
            if compiled.match(""):
                raise self.fail(ikp, f"regex {source!r} matches the empty string")
            out.append(Pattern(source, compiled, weight, label, gate))
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
    )


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
