"""Identity scrubbing: backends must never see the agent's names or any passage of its soul.

Everything is compared in the canonical form of ``caller_svc.normalize`` (NFKC, case folding,
format characters dropped, look-alikes folded, combining marks dropped), then the *original*
span is replaced with the configured placeholder.

**Names.** A name is matched against the text with every non-alphanumeric character removed
(``collapsed``), so ``T.i.m.m.y``, ``T i m m y``, ``T-i-m-m-y``, ``T_i_m_m_y`` and ``T\u200bimmy``
are found. Leetspeak digits are accepted in place of the letters they imitate (0→o, 1→i/l, 3→e,
4→a, 5→s, 7→t, 8→b, 9→g; and ``l`` for ``i``), as long as the match has at least one real
letter. Digits only ever match *inside* a name, so numbers elsewhere are untouched. Because removing
separators also removes word boundaries, a collapsed match only counts when both rules hold:

* *Boundary rule* — the match starts and ends at a word boundary of the canonical text: the
  characters on either side of each edge are not both letters, or the edge is a camel-case
  hump in the original (lower-case then upper-case: ``getTimmyName``). One trailing ``s`` is
  allowed before the closing boundary (``Timmys``; ``Timmy's`` passes anyway).
* *Run rule* — inside the match, every maximal run of letters/digits is either a single
  character (spelled out: ``T.i.m.m.y``) or exactly one or more whole words of the name,
  aligned to the name's own word boundaries (``Grand Timmy``, ``GrandTimmy``, ``G r a n d
  Timmy``).

So ``Tim mystery`` (collapsed ``timmystery``: the match ends inside ``mystery``) and ``Tim my``
(runs ``tim`` + ``my`` cut the name mid-word) do not match, nor do ``Timothy``, ``timing``,
``Timmyanthus`` or ``tummy``. The price: a name split into multi-letter chunks (``Tim-my``) is
not caught; it reads exactly like benign prose. Conversely a camel-case identifier that happens
to spell a name (``class TimMyHelper``) *is* redacted: it cannot be told from ``TimMy``.

**What is covered** (``apply``): the system prompt; every message's text and ``tool_call_id``;
assistant tool calls' id, name and arguments, and their provider state (signed by the provider,
so it is dropped whole, not redacted, when it holds identity material); tool names,
descriptions and parameter schemas; attachment names, and the data of textual attachments
(``text/*``, JSON, XML, YAML; decoded with the ``charset`` parameter, UTF-8 by default,
undecodable bytes preserved). JSON fields
(arguments, schemas) are parsed; keys and string values are redacted one by one (so ``\\u0054``
escapes cannot hide a name), then the string values are scanned joined together (a passage
spread over several values replaces every value it touches), then the re-serialised document
is scanned as text. Image, audio and video data are not inspected. Tool names and tool-call ids
are redacted with the placeholder reduced to ``[A-Za-z0-9_-]`` (``redacted``), so they stay valid
identifiers for the providers.

**Soul passages.** Any run of at least 8 consecutive words of a soul file (words in canonical
form, apostrophes ignored, so whitespace, line breaks, punctuation and case do not matter).
The soul files are cut into 8-word shingles once at load; a text is scanned word by word and
only windows of 8 consecutive soul-vocabulary words are looked up. Overlapping hits merge, so
the whole matched run is redacted.

**Failing closed.** ``IdentityGuard.load`` raises ``IdentityConfigError`` (naming the file) when
a soul file is missing, unreadable, not UTF-8, empty or too short to fingerprint, when a name is
too short to match safely, or when the placeholder itself would match. Redaction is repeated
until a re-scan is clean; a field that stays dirty, or a JSON field that cannot be redacted and
remain valid JSON, raises ``IdentityLeak`` even in redact mode.

**Modes.** ``on_detect: redact`` — ``apply`` returns a ``GuardResult`` with the scrubbed request.
``on_detect: reject`` — ``apply`` raises ``IdentityLeak(fields)`` and nothing is sent. Neither
``Match``, ``GuardResult`` nor ``IdentityLeak`` ever holds matched text, only offsets and field
paths, so they are safe to log.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from caller_svc.normalize import (
    LEET_FOLD,
    Normalized,
    alnum_positions,
    collapse,
    normalize,
    word_spans,
    words,
)
from uniwizard.config_types import IdentityConfig
from uniwizard.types import Attachment, BlindRequest, Message, ResponseFormat, ToolCall, ToolDef

SHINGLE_WORDS = 8
MIN_NAME_CHARS = 3
_MAX_PASSES = 4
_RUN = re.compile(r"[^\W_]+")
_TEXTUAL_MEDIA = re.compile(
    r"^(?:text/|application/(?:json|xml|yaml|x-yaml|javascript|x-ndjson|[\w.+-]*\+(?:json|xml)))"
)

MatchKind = Literal["name", "soul"]


class IdentityConfigError(Exception):
    """The identity configuration cannot be honoured; the caller must refuse to start."""


class IdentityLeak(Exception):
    """Identity material was found (reject mode) or could not be removed (any mode)."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields: tuple[str, ...] = tuple(fields)
        super().__init__(f"identity material in {', '.join(self.fields) or 'the request'}")


@dataclass(frozen=True, slots=True)
class Match:
    """Where identity material is, in the original text. Never holds the text itself."""

    kind: MatchKind
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class GuardResult:
    request: BlindRequest
    matches: int  # spans redacted, over all fields
    fields: tuple[str, ...]  # field paths that held identity material, e.g. "messages[2].text"


@dataclass(frozen=True, slots=True)
class _NamePattern:
    folded: str  # the collapsed name with leetspeak folded (LEET_FOLD)
    bounds: frozenset[int]  # collapsed offsets where the name's own words start/end


def _name_pattern(name: str) -> _NamePattern | None:
    name_words: list[str] = _RUN.findall(normalize(name).text)
    flat = "".join(name_words)
    if len(flat) < MIN_NAME_CHARS:
        return None
    bounds = {0}
    for w in name_words:
        bounds.add(max(bounds) + len(w))
    return _NamePattern(flat.translate(LEET_FOLD), frozenset(bounds))


def _is_boundary(norm: Normalized, idx: list[int], p: int) -> bool:
    """Is there a word boundary between canonical characters p-1 and p?"""
    canon = norm.text
    if p <= 0 or p >= len(canon):
        return True
    if not (canon[p].isalpha() and canon[p - 1].isalpha()):
        return True
    return norm.original[idx[p]].isupper() and norm.original[idx[p - 1]].islower()


def _runs_ok(canon: str, start: int, end: int, bounds: frozenset[int]) -> bool:
    offset = 0
    for m in _RUN.finditer(canon, start, end):
        n = m.end() - m.start()
        if n > 1 and not (offset in bounds and offset + n in bounds):
            return False
        offset += n
    return True


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


class IdentityGuard:
    """Finds and removes the agent's names and soul passages. Immutable after construction."""

    def __init__(
        self,
        names: Sequence[str] = (),
        soul_texts: Sequence[str] = (),
        *,
        on_detect: str = "redact",
        placeholder: str = "[redacted]",
        sources: Sequence[str] = (),
    ) -> None:
        """``sources`` names each soul text in error messages (defaults to its position)."""
        if on_detect not in ("redact", "reject"):
            raise IdentityConfigError(
                f"identity.on_detect must be redact or reject, not {on_detect!r}"
            )
        self.on_detect = on_detect
        self.placeholder = placeholder
        # Fix (e2e test_blind_identity, tool_name leaks): tool names and tool-call ids must match
        # ^[a-zA-Z0-9_-]+$ at OpenAI / Anthropic / Gemini, so "[redacted]" inside one turned a
        # scrubbed request into a provider 400. Identifier fields get the placeholder with every
        # other character dropped ("[redacted]" -> "redacted").
        self.identifier_placeholder = re.sub(r"[^A-Za-z0-9_-]+", "", placeholder) or "redacted"
        patterns: list[_NamePattern] = []
        for name in names:
            pattern = _name_pattern(name)
            if pattern is None:
                raise IdentityConfigError(
                    f"identity name #{len(patterns) + 1} has fewer than {MIN_NAME_CHARS} "
                    "letters or digits and cannot be matched safely"
                )
            patterns.append(pattern)
        self._names = tuple(patterns)
        shingles: set[tuple[str, ...]] = set()
        for i, text in enumerate(soul_texts):
            source = sources[i] if i < len(sources) else f"soul text #{i + 1}"
            ws = words(normalize(text).text)
            if not ws:
                raise IdentityConfigError(f"soul file {source} is empty")
            if len(ws) < SHINGLE_WORDS:
                raise IdentityConfigError(
                    f"soul file {source} has only {len(ws)} words; at least {SHINGLE_WORDS} are "
                    "needed to fingerprint its passages"
                )
            for j in range(len(ws) - SHINGLE_WORDS + 1):
                shingles.add(tuple(ws[j : j + SHINGLE_WORDS]))
        self._shingles = frozenset(shingles)
        self._vocab = frozenset(w for s in shingles for w in s)
        if self.scan(placeholder) or self.scan(self.identifier_placeholder):
            raise IdentityConfigError("identity.placeholder itself contains identity material")

    @classmethod
    def load(cls, cfg: IdentityConfig, base_dir: str) -> IdentityGuard:
        """Build from configuration; soul paths are relative to ``base_dir``. Fails closed."""
        texts: list[str] = []
        paths: list[str] = []
        for rel in cfg.soul_files:
            path = rel if os.path.isabs(rel) else os.path.join(base_dir, rel)
            texts.append(_read_soul(path))
            paths.append(path)
        return cls(
            cfg.names, texts, on_detect=cfg.on_detect, placeholder=cfg.placeholder, sources=paths
        )

    # -- text level -------------------------------------------------------------------------

    def scan(self, text: str) -> list[Match]:
        """Identity material in ``text``: merged, non-overlapping per kind, sorted by start."""
        if not text:
            return []
        norm = normalize(text)
        name_spans: list[tuple[int, int]] = []
        soul_spans = self._soul_spans(norm.text)
        idx: list[int] | None = None
        if self._names:
            collapsed = collapse(norm.text)
            folded = collapsed.translate(LEET_FOLD)
            if any(p.folded in folded for p in self._names):
                idx = norm.index()
                name_spans = self._name_spans(norm, idx, collapsed, folded)
        if not name_spans and not soul_spans:
            return []
        if idx is None:
            idx = norm.index()
        names = _merge(norm.original_span(s, e, idx) for s, e in name_spans)
        souls = _merge(norm.original_span(s, e, idx) for s, e in soul_spans)
        out = [Match("name", s, e) for s, e in names] + [Match("soul", s, e) for s, e in souls]
        out.sort(key=lambda m: (m.start, m.end))
        return out

    def redact(self, text: str, placeholder: str | None = None) -> tuple[str, int]:
        """Replace every match with the placeholder, re-scanning until clean: (text, count).

        Returns ``text`` itself (the same object) when nothing matched. Raises ``IdentityLeak``
        if the text is still dirty after a few passes (only adversarial input gets there).
        """
        total = 0
        for _ in range(_MAX_PASSES):
            matches = self.scan(text)
            if not matches:
                return text, total
            spans = _merge((m.start, m.end) for m in matches)
            parts: list[str] = []
            last = 0
            for s, e in spans:
                parts.append(text[last:s])
                parts.append(self.placeholder if placeholder is None else placeholder)
                last = e
            parts.append(text[last:])
            text = "".join(parts)
            total += len(spans)
        raise IdentityLeak(())

    def _name_spans(
        self, norm: Normalized, idx: list[int], collapsed: str, folded: str
    ) -> list[tuple[int, int]]:
        canon = norm.text
        pos = alnum_positions(canon)
        spans: list[tuple[int, int]] = []
        for pat in self._names:
            n = len(pat.folded)
            k = folded.find(pat.folded)
            while k >= 0:
                at, k = k, folded.find(pat.folded, k + 1)
                if not any(c.isalpha() for c in collapsed[at : at + n]):
                    continue  # all digits: a number, not a name
                start, end = pos[at], pos[at + n - 1] + 1
                if not _is_boundary(norm, idx, start) or not _runs_ok(
                    canon, start, end, pat.bounds
                ):
                    continue
                if not _is_boundary(norm, idx, end):
                    if canon[end] != "s" or not _is_boundary(norm, idx, end + 1):
                        continue
                    end += 1  # plural: "Timmys"
                spans.append((start, end))
        return spans

    def _soul_spans(self, canon: str) -> list[tuple[int, int]]:
        if not self._shingles:
            return []
        ws = words(canon)
        if len(ws) < SHINGLE_WORDS:
            return []
        vocab, shingles = self._vocab, self._shingles
        hits: list[tuple[int, int]] = []
        run = 0
        for i, w in enumerate(ws):
            run = run + 1 if w in vocab else 0
            if run >= SHINGLE_WORDS:
                first = i - SHINGLE_WORDS + 1
                if tuple(ws[first : i + 1]) in shingles:
                    hits.append((first, i + 1))
        if not hits:
            return []
        spans = word_spans(canon)
        return [(spans[a][0], spans[b - 1][1]) for a, b in _merge(hits)]

    # -- request level ----------------------------------------------------------------------

    def apply(self, request: BlindRequest) -> GuardResult:
        """Scrub everything that leaves for a provider.

        Redact mode: a ``GuardResult`` with the scrubbed request (the very same object when
        nothing matched). Reject mode: raises ``IdentityLeak`` naming every dirty field.
        """
        walk = _Walk(self)
        system_prompt = walk.text("system_prompt", request.system_prompt)
        messages = tuple(walk.message(f"messages[{i}]", m) for i, m in enumerate(request.messages))
        tools = tuple(walk.tool(f"tools[{i}]", t) for i, t in enumerate(request.tools))
        response_format = walk.response_format(request.response_format)
        if not walk.fields:
            return GuardResult(request, 0, ())
        if self.on_detect == "reject":
            raise IdentityLeak(walk.fields)
        scrubbed = dataclasses.replace(
            request,
            system_prompt=system_prompt,
            messages=messages,
            tools=tools,
            response_format=response_format,
        )
        return GuardResult(scrubbed, walk.matches, tuple(walk.fields))


class _Walk:
    """One pass over a request's fields, recording which ones were dirty."""

    def __init__(self, guard: IdentityGuard) -> None:
        self.guard = guard
        self.matches = 0
        self.fields: list[str] = []

    def _redact(self, path: str, text: str, placeholder: str | None = None) -> tuple[str, int]:
        try:
            return self.guard.redact(text, placeholder)
        except IdentityLeak:
            raise IdentityLeak((*self.fields, path)) from None

    def text(self, path: str, text: str, placeholder: str | None = None) -> str:
        new, n = self._redact(path, text, placeholder)
        if n:
            self.matches += n
            self.fields.append(path)
        return new

    def identifier(self, path: str, text: str) -> str:
        """A tool name or tool-call id: redacted with the identifier-safe placeholder."""
        return self.text(path, text, self.guard.identifier_placeholder)

    def json_text(self, path: str, text: str) -> str:
        """Redact inside a JSON document's keys and string values, keeping it valid JSON."""
        try:
            return self._json_text(path, text)
        except RecursionError:
            # Nested too deeply to parse or walk: it passes unchanged only when plainly clean
            # (nothing found by a text scan, no escapes that could hide a name); else fail closed.
            if "\\" in text or self.guard.scan(text):
                raise IdentityLeak((*self.fields, path)) from None
            return text

    def _json_text(self, path: str, text: str) -> str:
        try:
            doc = json.loads(text)
        except ValueError:
            return self.text(path, text)
        count = 0

        def fix(s: str) -> str:
            nonlocal count
            new, n = self._redact(path, s)
            count += n
            return new

        new_doc = _map_strings(doc, fix)
        # A passage spread over several string values: every value it touches is replaced.
        values = _values(new_doc)
        joined = " ".join(values)
        hits = self.guard.scan(joined)
        if hits:
            dirty: set[int] = set()
            offset = 0
            for i, v in enumerate(values):
                if any(m.start < offset + len(v) and m.end > offset for m in hits):
                    dirty.add(i)
                offset += len(v) + 1
            placeholder = self.guard.placeholder
            new_doc = _replace_values(new_doc, dirty, placeholder, iter(range(len(values))))
            count += len(hits)
        out = text if count == 0 else json.dumps(new_doc, ensure_ascii=False)
        # A passage split over several strings only shows in the document as a whole.
        raw, n = self._redact(path, out)
        if n:
            try:
                json.loads(raw)
            except ValueError:
                raise IdentityLeak((*self.fields, path)) from None
            out, count = raw, count + n
        if count:
            self.matches += count
            self.fields.append(path)
        return out

    def message(self, path: str, m: Message) -> Message:
        text = self.text(f"{path}.text", m.text)
        attachments = tuple(
            self.attachment(f"{path}.attachments[{i}]", a) for i, a in enumerate(m.attachments)
        )
        calls = tuple(self.call(f"{path}.tool_calls[{i}]", c) for i, c in enumerate(m.tool_calls))
        call_id = self.identifier(f"{path}.tool_call_id", m.tool_call_id)
        if (
            text is m.text
            and call_id is m.tool_call_id
            and all(a is b for a, b in zip(attachments, m.attachments, strict=True))
            and all(a is b for a, b in zip(calls, m.tool_calls, strict=True))
        ):
            return m
        return dataclasses.replace(
            m, text=text, attachments=attachments, tool_calls=calls, tool_call_id=call_id
        )

    def attachment(self, path: str, a: Attachment) -> Attachment:
        name = self.text(f"{path}.name", a.name)
        data = a.data
        if _TEXTUAL_MEDIA.match(a.media_type.strip().lower()):
            charset = _charset(a.media_type)
            decoded, exact = _decode(a.data, charset)
            new = self.text(f"{path}.data", decoded)
            if new is not decoded:
                try:
                    if not exact:
                        raise UnicodeError("lossy decoding")
                    data = new.encode(charset, errors="surrogateescape")
                except UnicodeError:
                    # Cannot be redacted and written back in its own charset: fail closed.
                    raise IdentityLeak(self.fields) from None
        if name is a.name and data is a.data:
            return a
        return dataclasses.replace(a, name=name, data=data)

    def call(self, path: str, c: ToolCall) -> ToolCall:
        call_id = self.identifier(f"{path}.id", c.id)
        name = self.identifier(f"{path}.name", c.name)
        args = self.json_text(f"{path}.arguments_json", c.arguments_json)
        state = self.provider_state(f"{path}.provider_state", c.provider_state)
        if (
            call_id is c.id
            and name is c.name
            and args is c.arguments_json
            and state is c.provider_state
        ):
            return c
        return dataclasses.replace(
            c, id=call_id, name=name, arguments_json=args, provider_state=state
        )

    def provider_state(self, path: str, state: str) -> str:
        """A tool call's provider state is signed by the provider (a Gemini thoughtSignature,
        Anthropic thinking blocks): it cannot be redacted and stay valid, so state holding
        identity material is dropped whole (the adapter then sends the call without it)."""
        if not state:
            return state
        texts = [state]
        try:
            texts.append(" ".join(_values(json.loads(state))))  # what \u escapes could hide
        except (ValueError, RecursionError):
            pass
        hits = sum(len(self.guard.scan(t)) for t in texts)
        if not hits:
            return state
        self.matches += hits
        self.fields.append(path)
        return ""

    def tool(self, path: str, t: ToolDef) -> ToolDef:
        name = self.identifier(f"{path}.name", t.name)
        description = self.text(f"{path}.description", t.description)
        params = self.json_text(f"{path}.parameters_json", t.parameters_json)
        if name is t.name and description is t.description and params is t.parameters_json:
            return t
        return dataclasses.replace(t, name=name, description=description, parameters_json=params)

    def response_format(self, f: ResponseFormat | None) -> ResponseFormat | None:
        """A json_schema's name and schema leave with the request: scrubbed like a tool's."""
        if f is None or not f.structured:
            return f
        name = self.identifier("response_format.name", f.name)
        schema = self.json_text("response_format.schema", f.schema_json)
        if name is f.name and schema is f.schema_json:
            return f
        return dataclasses.replace(f, name=name, schema_json=schema)


def _map_strings(doc: object, fix: Callable[[str], str]) -> object:
    if isinstance(doc, str):
        return fix(doc)
    if isinstance(doc, list):
        return [_map_strings(v, fix) for v in doc]
    if isinstance(doc, dict):
        return {fix(k): _map_strings(v, fix) for k, v in doc.items()}
    return doc


def _values(doc: object) -> list[str]:
    """The string values of a JSON document (not its keys), in document order."""
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, list):
        return [s for v in doc for s in _values(v)]
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _values(v)]
    return []


def _replace_values(
    doc: object, dirty: set[int], placeholder: str, counter: Iterator[int]
) -> object:
    """``doc`` with the string values numbered in ``dirty`` (document order) replaced."""
    if isinstance(doc, str):
        return placeholder if next(counter) in dirty else doc
    if isinstance(doc, list):
        return [_replace_values(v, dirty, placeholder, counter) for v in doc]
    if isinstance(doc, dict):
        return {k: _replace_values(v, dirty, placeholder, counter) for k, v in doc.items()}
    return doc


def _decode(data: bytes, charset: str) -> tuple[str, bool]:
    """The text of an attachment, and whether it encodes back to the very same bytes.

    Some codecs cannot escape every byte (an odd byte in UTF-16, codecs without
    ``surrogateescape``): those are decoded lossily, for scanning only.
    """
    try:
        return data.decode(charset, errors="surrogateescape"), True
    except UnicodeError:
        pass
    try:
        return data.decode(charset, errors="replace"), False
    except UnicodeError:
        return data.decode("utf-8", errors="replace"), False


def _charset(media_type: str) -> str:
    for param in media_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or "utf-8"
            try:
                "".encode(charset)
            except (LookupError, UnicodeError):  # unknown, or not a text codec ("undefined")
                return "utf-8"
            return charset
    return "utf-8"


def _read_soul(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise IdentityConfigError(f"soul file {path} does not exist") from None
    except IsADirectoryError:
        raise IdentityConfigError(f"soul file {path} is a directory, not a file") from None
    except PermissionError:
        raise IdentityConfigError(f"soul file {path} cannot be read: permission denied") from None
    except UnicodeDecodeError:
        raise IdentityConfigError(f"soul file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise IdentityConfigError(f"soul file {path} cannot be read: {exc.strerror}") from None
    if not text.strip():
        raise IdentityConfigError(f"soul file {path} is empty")
    return text
