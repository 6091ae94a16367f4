"""The tokens file (``UNIWIZARD_TOKENS_FILE``): each token's hash, name, scopes and budget.

    tokens:
      "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08":
        name: evennia                 # what the ledger and the spans show
        scopes: [think, route]        # route, think, admin, service
        budget: {daily_usd: 2, monthly_usd: 40}   # optional

Only hashes are written (``sha256:`` and the hex SHA-256 of the token); ``uniwizard token new``
makes a token and prints its entry. Names are unique; ``default`` is ``UNIWIZARD_TOKEN``'s. The
file is read with :mod:`uniwizard.yamlcheck`: a problem is one line naming the file, the line,
the key path and what is wrong. A token's entry is named by its position (``tokens[2]``), never
by its hash, so no hash reaches a message or a log.

:class:`TokenFile` re-reads the file when it changes on disk (looked at no more than once a
second), so a new token works and a removed one stops working without a restart; a change that
does not validate is logged and the tokens in force stay.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from uniwizard.auth import ALL_SCOPES, DEFAULT_NAME, NAME_RE, Principal, Scope, TokenTable
from uniwizard.config_types import Budget
from uniwizard.yamlcheck import (
    ConfigError,
    Entry,
    compose,
    mapping,
    number,
    read_text,
    string,
    strings,
)

log = logging.getLogger(__name__)

HASH_PREFIX = "sha256:"
HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TOKEN_PREFIX = "uwz_"
MIN_TOKEN_CHARS = 16
CHECK_EVERY_S = 1.0
ENTRY_KEYS = ("name", "scopes", "budget")
BUDGET_KEYS = ("daily_usd", "monthly_usd")
SCOPE_NAMES = tuple(s.value for s in Scope)


def hash_token(token: str) -> str:
    """How a token is written in the tokens file: ``sha256:<hex>``."""
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits), recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_token(token: str, setting: str = "UNIWIZARD_TOKEN") -> None:
    """Raise ValueError naming ``setting`` when ``token`` is too weak to be a bearer token."""
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ValueError(
            f"{setting}: must be at least {MIN_TOKEN_CHARS} characters with no whitespace"
        )


def parse_scopes(values: Sequence[str]) -> frozenset[Scope]:
    """Scope names to scopes; ValueError naming the first unknown one."""
    out: set[Scope] = set()
    for v in values:
        v = v.strip()
        if v not in SCOPE_NAMES:
            raise ValueError(f"unknown scope {v!r} (known: {', '.join(SCOPE_NAMES)})")
        out.add(Scope(v))
    if not out:
        raise ValueError(f"needs at least one scope ({', '.join(SCOPE_NAMES)})")
    return frozenset(out)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not a token name (a letter or digit, then letters, digits,"
            " '_', '.', '@' or '-'; at most 64)"
        )
    if name == DEFAULT_NAME:
        raise ValueError(f"{DEFAULT_NAME!r} is UNIWIZARD_TOKEN's name; choose another")
    return name


@dataclass(frozen=True, slots=True)
class TokenEntry:
    digest: bytes
    principal: Principal
    line: int


# -- reading ------------------------------------------------------------------------------------


def parse_tokens(text: str, path: str = "<tokens>") -> list[TokenEntry]:
    """Validate the text of a tokens file; ConfigError on the first problem."""
    try:
        root = compose(text, path)
    except ConfigError as exc:
        raise _without_keys(exc) from None
    if root is None:
        raise ConfigError(path, "", "the file is empty; it needs a 'tokens' mapping")
    top = mapping(root, ("tokens",), required=("tokens",))
    entries: list[TokenEntry] = []
    names: dict[str, int] = {}
    for i, (key, raw) in enumerate(mapping(top["tokens"]).items()):
        entry = replace(raw, key_path=f"tokens[{i}]")
        if not HASH_RE.match(key.lower()):
            raise entry.error(
                "the key must be the token's hash, sha256:<64 hex digits> (from"
                " `uniwizard token new`), never the token itself"
            )
        principal = _principal(entry)
        if principal.name in names:
            raise entry.error(
                f"name {principal.name!r} is taken by the entry on line {names[principal.name]}"
            )
        names[principal.name] = entry.line
        hex_digest = key.lower().removeprefix(HASH_PREFIX)
        entries.append(TokenEntry(bytes.fromhex(hex_digest), principal, entry.line))
    return entries


def _principal(entry: Entry) -> Principal:
    fields = mapping(entry, ENTRY_KEYS, required=("name", "scopes"))
    name = string(fields["name"])
    try:
        check_name(name)
    except ValueError as exc:
        raise fields["name"].error(str(exc)) from None
    scopes = strings(fields["scopes"])
    try:
        allowed = parse_scopes(scopes)
    except ValueError as exc:
        raise fields["scopes"].error(str(exc)) from None
    budget = _budget(fields["budget"]) if "budget" in fields else None
    return Principal(name, allowed, budget)


def _budget(entry: Entry) -> Budget:
    values = {k: number(v, non_negative=True) for k, v in mapping(entry, BUDGET_KEYS).items()}
    budget = Budget(**values)
    if not budget.capped:
        raise entry.error("needs daily_usd or monthly_usd above 0 (or remove it)")
    return budget


def _without_keys(exc: ConfigError) -> ConfigError:
    """A document-level error under ``tokens`` names its entry by the key, which is a hash (or
    a token pasted by mistake): keep the line, drop the key."""
    if not exc.key_path.startswith("tokens."):
        return exc
    message = (
        "the same token hash is listed twice" if exc.message == "duplicate key" else (exc.message)
    )
    return ConfigError(exc.path, "tokens", message, exc.line)


def table(entries: Sequence[TokenEntry], default_token: str | None) -> TokenTable:
    """The table the authorizer looks tokens up in: the file's entries, and ``default_token``
    (UNIWIZARD_TOKEN) as ``default`` with every scope."""
    pairs = [(e.digest, e.principal) for e in entries]
    if default_token is not None:
        default = hashlib.sha256(default_token.encode("utf-8")).digest()
        for e in entries:
            if e.digest == default:
                raise ValueError(
                    f"the entry on line {e.line} is UNIWIZARD_TOKEN's hash; UNIWIZARD_TOKEN is"
                    f" already {DEFAULT_NAME!r} with every scope (remove that entry)"
                )
        pairs.append((default, Principal(DEFAULT_NAME, ALL_SCOPES)))
    return TokenTable.of(pairs)


class TokenFile:
    """The tokens file in force, re-read when it changes on disk (see the module doc).

    The constructor reads it and raises ConfigError (or ValueError for a clash with
    ``default_token``) so a service fails fast; later problems keep the tokens in force."""

    def __init__(
        self,
        path: str,
        default_token: str | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.default_token = default_token
        self._clock = clock
        self._stamp = self._stat()
        self._table = self._load()
        self._checked = clock()

    def __call__(self) -> TokenTable:
        now = self._clock()
        if now - self._checked >= CHECK_EVERY_S:
            self._checked = now
            self._refresh()
        return self._table

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> TokenTable:
        entries = parse_tokens(read_text(self.path), self.path)
        return table(entries, self.default_token)

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._table = self._load()
        except (ConfigError, ValueError) as exc:
            log.warning("tokens file changed but was rejected; the tokens in force stay: %s", exc)
            return
        log.info("tokens file %s re-read: %d tokens", self.path, len(self._table.entries))


# -- writing (uniwizard token new) ---------------------------------------------------------------


def entry_yaml(token: str, name: str, scopes: frozenset[Scope], budget: Budget | None) -> str:
    """The entry of ``token`` in the tokens file, indented to go under ``tokens:``."""
    ordered = [s.value for s in Scope if s in scopes]
    lines = [
        f'  "{hash_token(token)}":',
        f"    name: {name}",
        f"    scopes: [{', '.join(ordered)}]",
    ]
    if budget is not None and budget.capped:
        parts = [f"{k}: {getattr(budget, k):g}" for k in BUDGET_KEYS if getattr(budget, k) > 0]
        lines.append(f"    budget: {{{', '.join(parts)}}}")
    return "\n".join(lines) + "\n"


def append_entry(path: str, entry: str) -> None:
    """Add an entry to the tokens file at ``path`` (made, readable by its owner only, if
    missing). The result must validate, or nothing is written: ConfigError or ValueError."""
    current = read_text(path) if os.path.exists(path) else ""
    before = 0
    if current.strip():
        before = len(parse_tokens(current, path))  # a file that is wrong now is not added to
        text = current if current.endswith("\n") else current + "\n"
        if not re.search(r"^tokens:\s*(#.*)?$", text, re.MULTILINE):
            raise ValueError(f"{path}: no 'tokens:' line to add under; add the entry by hand")
        text += entry
    else:
        text = "tokens:\n" + entry
    if len(parse_tokens(text, path)) != before + 1:
        raise ValueError(f"{path}: the entry would not land under 'tokens:'; add it by hand")
    _write_atomically(path, text)


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
    fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
