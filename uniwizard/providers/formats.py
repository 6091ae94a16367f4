"""Structured outputs: which a backend can return, and the schema a request names. Pure.

A backend's ``output_formats`` (``configs/backends.yaml``) says which of ``json_object`` and
``json_schema`` it can return; unset, its provider's default applies:

* ``openai``: both (``response_format``);
* ``gemini``: both (``responseMimeType: application/json``, with ``responseJsonSchema``);
* ``anthropic``: ``json_schema`` only (``output_config.format``; there is no JSON mode without a
  schema);
* ``openai_compatible``: none: servers differ, so each backend says what its server takes.
"""

from __future__ import annotations

import json
from typing import Any

from uniwizard.config_types import BackendConfig
from uniwizard.providers.base import UnsupportedInput
from uniwizard.types import ResponseFormat

PROVIDER_DEFAULTS: dict[str, tuple[str, ...]] = {
    "openai": ("json_object", "json_schema"),
    "gemini": ("json_object", "json_schema"),
    "anthropic": ("json_schema",),
    "openai_compatible": (),
}


def output_formats(b: BackendConfig) -> tuple[str, ...]:
    """The structured outputs ``b`` can return."""
    if b.output_formats is not None:
        return b.output_formats
    return PROVIDER_DEFAULTS.get(b.provider, ())


def can_return(b: BackendConfig, wanted: ResponseFormat | None) -> bool:
    """Whether ``b`` can answer in the shape ``wanted`` asks for (None and text: always)."""
    return wanted is None or not wanted.structured or wanted.type.value in output_formats(b)


def schema_of(f: ResponseFormat) -> dict[str, Any]:
    """The JSON Schema of a json_schema format, as an object; raises UnsupportedInput naming the
    problem when it is not one."""
    try:
        schema = json.loads(f.schema_json or "{}")
    except ValueError as exc:
        raise UnsupportedInput("response_format: the schema is not valid JSON") from exc
    if not isinstance(schema, dict):
        raise UnsupportedInput("response_format: the schema must be a JSON object")
    return schema
