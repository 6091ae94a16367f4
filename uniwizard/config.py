"""Load and validate ``backends.yaml``.

Every problem is reported as one :class:`ConfigError` whose message names the file, the line, the
key path and what is wrong, e.g.::

    configs/backends.yaml:14: backends.claude.timeout: must be a positive number, got -1

The YAML is composed into nodes first so every value keeps its line number.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from uniwizard.config_types import (
    MODALITIES,
    PROVIDERS,
    BackendConfig,
    Config,
    IdentityConfig,
    ProbeConfig,
)

KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shapes of real API keys: an env var name never looks like these.
SECRET_RE = re.compile(r"^(sk-|sk_|xai-|AIza|gsk_|key-)|[-.]", re.ASCII)


class ConfigError(Exception):
    """A configuration problem, with where it is and what is wrong."""

    def __init__(self, path: str, key_path: str, message: str, line: int | None = None):
        self.path, self.key_path, self.message, self.line = path, key_path, message, line
        where = f"{path}:{line}" if line else path
        text = f"{where}: {key_path}: {message}" if key_path else f"{where}: {message}"
        super().__init__(_one_line(text))


def _one_line(text: str) -> str:
    """Keys and values quoted from the file may hold line breaks or control characters."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _problem(exc: BaseException) -> str:
    """The first line of what a YAML (or scalar conversion) error says is wrong."""
    problem = getattr(exc, "problem", None) or str(exc)
    lines = problem.strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


@dataclass(frozen=True, slots=True)
class _Field:
    kind: str  # str, int, number, bool, list, url, env, provider, modalities
    required: bool = False
    positive: bool = False
    non_negative: bool = False
    nullable: bool = False


BACKEND_FIELDS: dict[str, _Field] = {
    "provider": _Field("provider", required=True),
    "url": _Field("url", required=True),
    "model": _Field("str", required=True),
    "api_key_env": _Field("env", nullable=True),
    "cost_per_1k": _Field("number", non_negative=True),
    "cost_per_1k_input": _Field("number", non_negative=True),
    "cost_per_1k_output": _Field("number", non_negative=True),
    "strengths": _Field("list"),
    "weaknesses": _Field("list"),
    "max_context": _Field("int", positive=True),
    "max_output_tokens": _Field("int", positive=True),
    "timeout": _Field("number", positive=True),
    "connect_timeout": _Field("number", positive=True),
    "first_token_timeout": _Field("number", positive=True),
    "stream_idle_timeout": _Field("number", positive=True),
    "modalities": _Field("modalities"),
    "tools": _Field("bool"),
    "private": _Field("bool"),
    "allowed_fails": _Field("int", positive=True),
    "cooldown_time": _Field("number", positive=True),
    "failure_window": _Field("number", positive=True),
    "enabled": _Field("bool"),
}
IDENTITY_FIELDS: dict[str, _Field] = {
    "names": _Field("list"),
    "soul_files": _Field("list"),
    "on_detect": _Field("str"),
    "placeholder": _Field("str"),
}
PROBE_FIELDS: dict[str, _Field] = {
    "interval": _Field("number", positive=True),
    "jitter": _Field("number", non_negative=True),
    "timeout": _Field("number", positive=True),
}
TOP_LEVEL = ("backends", "identity", "probes")


class _Reader:
    """Walks composed YAML nodes, converting scalars and raising ConfigError with lines."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key_path: str, message: str, node: yaml.Node | None) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(self.path, key_path, message, line)

    def mapping(self, node: yaml.Node, key_path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(key_path, f"must be a mapping, got {_describe(node)}", node)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise self.fail(key_path, "keys must be plain strings", knode)
            key = str(knode.value)
            if key in out:
                raise self.fail(_join(key_path, key), "duplicate key", knode)
            out[key] = (knode, vnode)
        return out

    def scalar(self, node: yaml.Node, key_path: str, spec: _Field) -> Any:
        try:
            value = _construct(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            # an unknown tag (!!foo), a bad tagged scalar (!!int abc), a recursive alias
            raise self.fail(key_path, f"cannot read the value: {_problem(exc)}", node) from None
        if value is None:
            if spec.nullable:
                return None
            raise self.fail(key_path, "must not be empty", node)
        kind = spec.kind
        if kind in ("list", "modalities"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(key_path, f"must be a list of strings, got {_show(value)}", node)
            if kind == "modalities":
                bad = [v for v in value if v not in MODALITIES]
                if bad:
                    raise self.fail(
                        key_path,
                        f"unknown modality {bad[0]!r} (known: {', '.join(MODALITIES)})",
                        node,
                    )
            return tuple(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(key_path, f"must be true or false, got {_show(value)}", node)
            return value
        if kind in ("int", "number"):
            ok = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
            if isinstance(value, bool) or not ok:
                want = "a whole number" if kind == "int" else "a number"
                raise self.fail(key_path, f"must be {want}, got {_show(value)}", node)
            if not math.isfinite(value):
                raise self.fail(key_path, f"must be a finite number, got {value}", node)
            if spec.positive and value <= 0:
                raise self.fail(key_path, f"must be a positive number, got {value}", node)
            if spec.non_negative and value < 0:
                raise self.fail(key_path, f"must not be negative, got {value}", node)
            return float(value) if kind == "number" else value
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key_path, f"must be a non-empty string, got {_show(value)}", node)
        if kind == "provider" and value not in PROVIDERS:
            raise self.fail(
                key_path, f"unknown provider {value!r} (known: {', '.join(PROVIDERS)})", node
            )
        if kind == "url" and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise self.fail(key_path, f"must be an http(s) URL, got {value!r}", node)
        if kind == "env":
            if SECRET_RE.search(value) or not ENV_NAME_RE.match(value):
                raise self.fail(
                    key_path,
                    "looks like an API key written inline; put the key in an environment "
                    "variable and write that variable's NAME here (e.g. ANTHROPIC_API_KEY)",
                    node,
                )
        return value

    def section(
        self, node: yaml.Node, key_path: str, spec: dict[str, _Field]
    ) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
        items = self.mapping(node, key_path)
        out: dict[str, Any] = {}
        for key, (knode, vnode) in items.items():
            kp = _join(key_path, key)
            if key not in spec:
                if key in ("api_key", "key", "apikey", "secret", "token"):
                    raise self.fail(
                        kp,
                        "API keys must not be written in the config; set api_key_env to the "
                        "NAME of an environment variable holding the key",
                        knode,
                    )
                raise self.fail(kp, f"unknown key (allowed: {', '.join(spec)})", knode)
            out[key] = self.scalar(vnode, kp, spec[key])
        for key, f in spec.items():
            if f.required and key not in out:
                raise self.fail(_join(key_path, key), "required key is missing", node)
        return out, {k: v for k, (_, v) in items.items()}


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)  # type: ignore[no-untyped-call]
    finally:
        loader.dispose()


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"{node.value!r}" if node.value else "nothing"
    return "a mapping"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _backend(key: str, values: dict[str, Any]) -> BackendConfig:
    values = dict(values)
    both = values.pop("cost_per_1k", None)
    if both is not None:
        values.setdefault("cost_per_1k_input", both)
        values.setdefault("cost_per_1k_output", both)
    values["url"] = values["url"].rstrip("/")
    return BackendConfig(key=key, **values)


def parse_config(text: str, path: str = "<config>") -> Config:
    """Validate YAML text; raise ConfigError on the first problem."""
    reader = _Reader(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, "", f"invalid YAML: {_problem(exc)}", line) from None
    except RecursionError:
        raise ConfigError(path, "", "invalid YAML: nested too deeply") from None
    if root is None:
        raise ConfigError(path, "", "the file is empty; it needs a 'backends' mapping")
    top = reader.mapping(root, "")
    for key, (knode, _) in top.items():
        if key not in TOP_LEVEL:
            raise reader.fail(key, f"unknown key (allowed: {', '.join(TOP_LEVEL)})", knode)
    if "backends" not in top:
        raise ConfigError(path, "backends", "required key is missing", 1)
    backends_node = top["backends"][1]
    entries = reader.mapping(backends_node, "backends")
    if not entries:
        raise reader.fail("backends", "must define at least one backend", backends_node)
    backends: dict[str, BackendConfig] = {}
    for key, (knode, vnode) in entries.items():
        kp = f"backends.{key}"
        if not KEY_RE.match(key):
            raise reader.fail(kp, "backend keys are lowercase letters, digits, '-' and '_'", knode)
        values, _ = reader.section(vnode, kp, BACKEND_FIELDS)
        backends[key] = _backend(key, values)
    identity = None
    if "identity" in top:
        inode = top["identity"][1]
        values, nodes = reader.section(inode, "identity", IDENTITY_FIELDS)
        mode = values.get("on_detect", "redact")
        if mode not in ("redact", "reject"):
            raise reader.fail(
                "identity.on_detect", f"must be redact or reject, got {mode!r}", nodes["on_detect"]
            )
        base = Path(path).parent
        souls = tuple(
            str((base / p) if not os.path.isabs(p) else Path(p))
            for p in values.get("soul_files", ())
        )
        values["soul_files"] = souls
        identity = IdentityConfig(**values)
        if not identity.names and not identity.soul_files:
            raise reader.fail("identity", "needs names or soul_files (or remove it)", inode)
    probes = ProbeConfig()
    if "probes" in top:
        values, nodes = reader.section(top["probes"][1], "probes", PROBE_FIELDS)
        if values.get("jitter", 0.0) >= 1:
            raise reader.fail(
                "probes.jitter", "is a fraction of the interval, below 1", nodes["jitter"]
            )
        probes = ProbeConfig(**values)
    return Config(path=path, backends=backends, identity=identity, probes=probes)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; raise ConfigError naming the file on any problem."""
    p = str(path)
    try:
        text = Path(p).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(p, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, "", f"cannot read: {exc.__class__.__name__}") from None
    return parse_config(text, p)


def dump_config(config: Config) -> str:
    """YAML text that loads back to an equal configuration (soul paths made absolute)."""
    data: dict[str, Any] = {"backends": {}}
    for key, b in config.backends.items():
        entry = {f.name: getattr(b, f.name) for f in fields(b) if f.name != "key"}
        data["backends"][key] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in entry.items()
        }
    if config.identity is not None:
        ident = config.identity
        data["identity"] = {
            "names": list(ident.names),
            "soul_files": [os.path.abspath(p) for p in ident.soul_files],
            "on_detect": ident.on_detect,
            "placeholder": ident.placeholder,
        }
    data["probes"] = {f.name: getattr(config.probes, f.name) for f in fields(config.probes)}
    return yaml.safe_dump(data, sort_keys=False)


def rewrite_urls(config: Config, url_for: Callable[[BackendConfig], str]) -> Config:
    """A copy of the configuration with every backend's url replaced (e.g. by the simulator's)."""
    from dataclasses import replace

    backends = {k: replace(b, url=url_for(b)) for k, b in config.backends.items()}
    return replace(config, backends=backends)
