"""Bounded inputs: every limit configurable, every violation a clear INVALID_ARGUMENT message.

| limit                 | environment variable              | default    |
|-----------------------|-----------------------------------|------------|
| gRPC message size     | UNIWIZARD_MAX_MESSAGE_BYTES       | 32 MiB     |
| text of a request     | UNIWIZARD_MAX_TASK_CHARS          | 2,000,000  |
| messages in a request | UNIWIZARD_MAX_MESSAGES            | 256        |
| one attachment        | UNIWIZARD_MAX_ATTACHMENT_BYTES    | 20 MiB     |
| attachments           | UNIWIZARD_MAX_ATTACHMENTS         | 16         |
| tool definitions      | UNIWIZARD_MAX_TOOLS               | 128        |
| deadline              | UNIWIZARD_MAX_DEADLINE_S          | 600        |

The gRPC message size is enforced by gRPC itself (RESOURCE_EXHAUSTED, naming the size); the
others here, on the decoded request, before any work is done.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from uniwizard.v1 import common_pb2

MEDIA_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
SCHEMA_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for json_schema.name


class LimitsError(ValueError):
    """A limit setting that is not a positive number; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 32 * 1024 * 1024
    max_task_chars: int = 2_000_000
    max_messages: int = 256
    max_attachment_bytes: int = 20 * 1024 * 1024
    max_attachments: int = 16
    max_tools: int = 128
    max_deadline_s: float = 600.0


def load_limits(env: Mapping[str, str] | None = None) -> Limits:
    env = os.environ if env is None else env
    values: dict[str, float | int] = {}
    for f in fields(Limits):
        name = f"UNIWIZARD_{f.name.upper()}"
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            value = float(raw) if f.type == "float" else int(raw)
        except ValueError:
            raise LimitsError(f"{name}={raw!r}: must be a number") from None
        if value <= 0:
            raise LimitsError(f"{name}={raw!r}: must be positive")
        values[f.name] = value
    return Limits(**values)  # type: ignore[arg-type]


def check_request(req: common_pb2.BlindRequest, limits: Limits, where: str = "request") -> str:
    """The first problem with a blind request, in words naming the field and limit, or ""."""
    if not req.messages:
        return f"{where}.messages must contain at least one message"
    if len(req.messages) > limits.max_messages:
        return (
            f"{where}.messages has {len(req.messages)} messages; the limit is "
            f"{limits.max_messages} (UNIWIZARD_MAX_MESSAGES)"
        )
    chars = len(req.system_prompt) + sum(len(m.text) for m in req.messages)
    if chars > limits.max_task_chars:
        return (
            f"{where} has {chars:,} characters of text; the limit is "
            f"{limits.max_task_chars:,} (UNIWIZARD_MAX_TASK_CHARS)"
        )
    count = 0
    for i, m in enumerate(req.messages):
        for j, a in enumerate(m.attachments):
            count += 1
            path = f"{where}.messages[{i}].attachments[{j}]"
            if not MEDIA_TYPE_RE.match(a.media_type.split(";", 1)[0].strip().lower()):
                return f"{path}.media_type {a.media_type!r} is not a media type like image/png"
            if len(a.data) > limits.max_attachment_bytes:
                return (
                    f"{path} is {len(a.data):,} bytes; the limit is "
                    f"{limits.max_attachment_bytes:,} (UNIWIZARD_MAX_ATTACHMENT_BYTES)"
                )
    if count > limits.max_attachments:
        return (
            f"{where} has {count} attachments; the limit is {limits.max_attachments} "
            "(UNIWIZARD_MAX_ATTACHMENTS)"
        )
    if len(req.tools) > limits.max_tools:
        return (
            f"{where}.tools has {len(req.tools)} tools; the limit is {limits.max_tools} "
            "(UNIWIZARD_MAX_TOOLS)"
        )
    for k, t in enumerate(req.tools):
        if not t.name.strip():
            return f"{where}.tools[{k}].name must not be empty"
        if t.parameters_json:
            try:
                schema = json.loads(t.parameters_json)
            except ValueError:
                return f"{where}.tools[{k}].parameters_json is not valid JSON"
            if not isinstance(schema, dict):
                return f"{where}.tools[{k}].parameters_json must be a JSON object (a schema)"
    problem = _check_response_format(req, where)
    if problem:
        return problem
    if req.HasField("temperature") and not 0.0 <= req.temperature <= 2.0:
        return f"{where}.temperature {req.temperature:g} is outside 0..2"
    if req.max_output_tokens < 0:
        return f"{where}.max_output_tokens must not be negative"
    return ""


def _check_response_format(req: common_pb2.BlindRequest, where: str) -> str:
    if not req.HasField("response_format"):
        return ""
    f, path = req.response_format, f"{where}.response_format"
    if f.type not in common_pb2.OutputFormat.values():
        return f"{path}.type {f.type} is not an output format this service knows"
    if f.type != common_pb2.OUTPUT_FORMAT_JSON_SCHEMA:
        return ""
    if f.name and not SCHEMA_NAME_RE.match(f.name):
        return f"{path}.name must be letters, digits, '_' or '-' (at most 64)"
    try:
        schema = json.loads(f.schema_json or "")
    except ValueError:
        return f"{path}.schema_json is not valid JSON"
    if not isinstance(schema, dict):
        return f"{path}.schema_json must be a JSON object (a schema)"
    return ""


def check_deadline(remaining_s: float | None, limits: Limits) -> str:
    if remaining_s is not None and remaining_s > limits.max_deadline_s + 1:
        return (
            f"the deadline of {remaining_s:.0f} s exceeds the limit of "
            f"{limits.max_deadline_s:.0f} s (UNIWIZARD_MAX_DEADLINE_S)"
        )
    return ""
