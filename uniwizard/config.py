"""Load and validate ``backends.yaml`` into a :class:`~uniwizard.config_types.Config`.

The file is read with :mod:`uniwizard.yamlcheck`, so every problem is one :class:`ConfigError`
whose message names the file, the line, the key path and what is wrong, e.g.::

    configs/backends.yaml:14: backends.claude.timeout: must be a positive number, got -1

This module adds what is particular to backends: provider names, http(s) URLs, modalities,
backend key names, API keys kept out of the file (``api_key_env`` names an environment
variable), soul files resolved next to the config, probe jitter below 1, spending caps
(``budget:`` per backend and overall) and how fast learned statistics decay (``learning:``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from uniwizard.config_types import (
    MODALITIES,
    OUTPUT_FORMATS,
    PROVIDERS,
    BackendConfig,
    Budget,
    Config,
    IdentityConfig,
    LearningConfig,
    ProbeConfig,
)
from uniwizard.yamlcheck import (
    ConfigError,  # the one configuration error type; import it from here or from yamlcheck
    Entry,
    boolean,
    compose,
    integer,
    is_null,
    mapping,
    number,
    read_text,
    string,
    strings,
)

__all__ = [
    "BACKEND_FIELDS",
    "ConfigError",
    "dump_config",
    "load_config",
    "parse_config",
    "rewrite_urls",
]

KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shapes of real API keys: an env var name never looks like these.
SECRET_RE = re.compile(r"^(sk-|sk_|xai-|AIza|gsk_|key-)|[-.]", re.ASCII)
URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$")
# Keys people write an API key under; the message tells them to use api_key_env instead.
INLINE_KEY_FIELDS = ("api_key", "key", "apikey", "secret", "token")

Read = Callable[[Entry], Any]  # checks one value and returns it as the dataclass field wants


def _provider(entry: Entry) -> str:
    value = string(entry)
    if value not in PROVIDERS:
        raise entry.error(f"unknown provider {value!r} (known: {', '.join(PROVIDERS)})")
    return value


def _url(entry: Entry) -> str:
    value = string(entry)
    if not URL_RE.match(value):
        raise entry.error(f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _env_name(entry: Entry) -> str | None:
    if is_null(entry):
        return None
    value = string(entry)
    if SECRET_RE.search(value) or not ENV_NAME_RE.match(value):
        raise entry.error(
            "looks like an API key written inline; put the key in an environment "
            "variable and write that variable's NAME here (e.g. ANTHROPIC_API_KEY)"
        )
    return value


def _modalities(entry: Entry) -> tuple[str, ...]:
    values = strings(entry)
    bad = [v for v in values if v not in MODALITIES]
    if bad:
        raise entry.error(f"unknown modality {bad[0]!r} (known: {', '.join(MODALITIES)})")
    return values


def _output_formats(entry: Entry) -> tuple[str, ...] | None:
    """null: the provider's default; else a list of OUTPUT_FORMATS."""
    if is_null(entry):
        return None
    values = strings(entry)
    bad = [v for v in values if v not in OUTPUT_FORMATS]
    if bad:
        raise entry.error(f"unknown output format {bad[0]!r} (known: {', '.join(OUTPUT_FORMATS)})")
    return values


_positive: Read = partial(number, positive=True)
_non_negative: Read = partial(number, non_negative=True)
_count: Read = partial(integer, minimum=1)


def _fraction(entry: Entry) -> float:
    value = number(entry, positive=True)
    if value >= 1:
        raise entry.error(f"is a fraction of the cap, below 1, got {value}")
    return float(value)


BUDGET_FIELDS: dict[str, Read] = {
    "daily_usd": _non_negative,
    "monthly_usd": _non_negative,
    "warn_at": _fraction,
}


def _budget(entry: Entry) -> Budget:
    values, _ = _section(entry, BUDGET_FIELDS)
    budget = Budget(**values)
    if not budget.capped:
        raise entry.error("needs daily_usd or monthly_usd above 0 (or remove it)")
    return budget


def _price_or_default(entry: Entry) -> float | None:
    """A price, or null for the provider's default (uniwizard/providers/pricing.py)."""
    return None if is_null(entry) else _non_negative(entry)


# Every key a backend may have, and how its value is checked.
BACKEND_FIELDS: dict[str, Read] = {
    "provider": _provider,
    "url": _url,
    "model": string,
    "api_key_env": _env_name,
    "cost_per_1k": _non_negative,
    "cost_per_1k_input": _non_negative,
    "cost_per_1k_output": _non_negative,
    "cost_per_1k_cached_input": _price_or_default,
    "cost_per_1k_cache_write": _price_or_default,
    "strengths": strings,
    "weaknesses": strings,
    "max_context": _count,
    "max_output_tokens": _count,
    "timeout": _positive,
    "connect_timeout": _positive,
    "first_token_timeout": _positive,
    "stream_idle_timeout": _positive,
    "modalities": _modalities,
    "tools": boolean,
    "output_formats": _output_formats,
    "private": boolean,
    "allowed_fails": _count,
    "cooldown_time": _positive,
    "failure_window": _positive,
    "enabled": boolean,
    "budget": _budget,
}
BACKEND_REQUIRED = ("provider", "url", "model")
IDENTITY_FIELDS: dict[str, Read] = {
    "names": strings,
    "soul_files": strings,
    "on_detect": string,
    "placeholder": string,
}
PROBE_FIELDS: dict[str, Read] = {
    "interval": _positive,
    "jitter": _non_negative,
    "timeout": _positive,
}
LEARNING_FIELDS: dict[str, Read] = {
    "window": _count,
    "half_life_hours": _positive,
}
TOP_LEVEL = ("backends", "identity", "probes", "budget", "learning")


def _section(
    entry: Entry, spec: dict[str, Read], required: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Entry]]:
    """The checked values of a mapping whose keys are ``spec``'s, and their entries."""
    for key, sub in mapping(entry).items():
        if key in INLINE_KEY_FIELDS and key not in spec:
            raise sub.error(
                "API keys must not be written in the config; set api_key_env to the "
                "NAME of an environment variable holding the key"
            )
    entries = mapping(entry, tuple(spec))
    values = {key: spec[key](sub) for key, sub in entries.items()}
    for key in required:
        if key not in entries:
            raise entry.missing(key)
    return values, entries


def _backend(key: str, values: dict[str, Any]) -> BackendConfig:
    values = dict(values)
    both = values.pop("cost_per_1k", None)
    if both is not None:
        values.setdefault("cost_per_1k_input", both)
        values.setdefault("cost_per_1k_output", both)
    return BackendConfig(key=key, **values)


def _identity(entry: Entry, config_path: str) -> IdentityConfig:
    values, entries = _section(entry, IDENTITY_FIELDS)
    mode = values.get("on_detect", "redact")
    if mode not in ("redact", "reject"):
        raise entries["on_detect"].error(f"must be redact or reject, got {mode!r}")
    base = Path(config_path).parent  # relative soul files are next to the config
    values["soul_files"] = tuple(
        str(Path(p) if os.path.isabs(p) else base / p) for p in values.get("soul_files", ())
    )
    identity = IdentityConfig(**values)
    if not identity.names and not identity.soul_files:
        raise entry.error("needs names or soul_files (or remove it)")
    return identity


def _probes(entry: Entry) -> ProbeConfig:
    values, entries = _section(entry, PROBE_FIELDS)
    if values.get("jitter", 0.0) >= 1:
        raise entries["jitter"].error("is a fraction of the interval, below 1")
    return ProbeConfig(**values)


def parse_config(text: str, path: str = "<config>") -> Config:
    """Validate YAML text; raise ConfigError on the first problem (``path`` names the file in
    messages and is where relative soul files are looked up)."""
    root = compose(text, path)
    if root is None:
        raise ConfigError(path, "", "the file is empty; it needs a 'backends' mapping")
    top = mapping(root, TOP_LEVEL, required=("backends",))
    entries = mapping(top["backends"])
    if not entries:
        raise top["backends"].error("must define at least one backend")
    backends: dict[str, BackendConfig] = {}
    for key, entry in entries.items():
        if not KEY_RE.match(key):
            raise entry.error("backend keys are lowercase letters, digits, '-' and '_'")
        values, _ = _section(entry, BACKEND_FIELDS, BACKEND_REQUIRED)
        backends[key] = _backend(key, values)
    identity = _identity(top["identity"], path) if "identity" in top else None
    probes = _probes(top["probes"]) if "probes" in top else ProbeConfig()
    budget = _budget(top["budget"]) if "budget" in top else Budget()
    learning = (
        LearningConfig(**_section(top["learning"], LEARNING_FIELDS)[0])
        if "learning" in top
        else LearningConfig()
    )
    return Config(
        path=path,
        backends=backends,
        identity=identity,
        probes=probes,
        budget=budget,
        learning=learning,
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; raise ConfigError naming the file on any problem."""
    p = str(path)
    return parse_config(read_text(p), p)


def dump_config(config: Config) -> str:
    """YAML text that loads back to an equal configuration (soul paths made absolute)."""
    data: dict[str, Any] = {"backends": {}}
    for key, b in config.backends.items():
        entry = {f.name: getattr(b, f.name) for f in fields(b) if f.name not in ("key", "budget")}
        data["backends"][key] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in entry.items()
        }
        if b.budget.capped:
            data["backends"][key]["budget"] = _fields(b.budget)
    if config.identity is not None:
        ident = config.identity
        data["identity"] = {
            "names": list(ident.names),
            "soul_files": [os.path.abspath(p) for p in ident.soul_files],
            "on_detect": ident.on_detect,
            "placeholder": ident.placeholder,
        }
    data["probes"] = _fields(config.probes)
    if config.budget.capped:
        data["budget"] = _fields(config.budget)
    data["learning"] = _fields(config.learning)
    return yaml.safe_dump(data, sort_keys=False)


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields(value)}


def rewrite_urls(config: Config, url_for: Callable[[BackendConfig], str]) -> Config:
    """A copy of the configuration with every backend's url replaced (e.g. by the simulator's)."""
    backends = {k: replace(b, url=url_for(b)) for k, b in config.backends.items()}
    return replace(config, backends=backends)
