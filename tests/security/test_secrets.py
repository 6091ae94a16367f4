"""After a run with faults, no API key appears in logs, spans, error messages, `backends`
output, the ledger or the simulator-facing reports."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import grpc
import pytest
from google.protobuf.json_format import MessageToJson
from grpc_status import rpc_status
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.stack import SIM_KEY, running_stack, task
from uniwizard import telemetry
from uniwizard.v1 import registry_pb2, router_pb2

FAULTS = [
    ("gpt", {"kind": "status", "status": 401, "message": "Incorrect key: {OPENAI_API_KEY}"}),
    ("claude", {"kind": "status", "status": 401}),
    ("gemini", {"kind": "status", "status": 403}),
    ("kimi", {"kind": "status", "status": 500, "message": "upstream said {MOONSHOT_API_KEY}"}),
    ("grok", {"kind": "reset"}),
    ("local", {"kind": "status", "status": 429, "retry_after": 1}),
]
TASKS = [
    "Who was the first emperor of Rome?",
    "Analyze the trade-offs between event sourcing and CRUD",
    "Quick — one word: capital of Peru?",
    "What's the status of the nightly backup job?",
    "Generate the full CRUD boilerplate for these 12 Django models",
]


async def test_no_key_anywhere_after_a_run_with_faults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    telemetry.use_exporter(exporter)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    try:
        async with running_stack(tmp_path, probes=True) as stack:
            # A distinct key per backend (the caller and the probes read them at call time).
            keys = {
                b.api_key_env: f"sk-{b.key}-{os.urandom(6).hex()}"
                for b in stack.config.backends.values()
                if b.api_key_env
            }
            os.environ.update(keys)
            for target, fault in FAULTS:
                if "message" in fault:  # a provider that echoes the key it was sent
                    fault = {**fault, "message": fault["message"].format(**keys)}
                stack.sim.add_fault(target, fault, times=2)
            for text in TASKS * 2:
                try:
                    result = await stack.dispatch(task(text))
                    texts.append(MessageToJson(result))
                except grpc.aio.AioRpcError as exc:
                    texts.append(exc.details() or "")
                    status = rpc_status.from_call(exc)
                    if status is not None:
                        failure = router_pb2.DispatchFailure()
                        status.details[0].Unpack(failure)
                        texts.append(MessageToJson(failure))
            for key in stack.config.backends:
                await stack.registry.prober.probe(key)
            listed = await stack.registry_stub.ListBackends(
                registry_pb2.ListBackendsRequest(), timeout=5
            )
            texts.append(MessageToJson(listed))
    finally:
        telemetry.use_exporter(None)
    texts.extend(r.getMessage() for r in caplog.records)
    for span in exporter.get_finished_spans():
        texts.append(json.dumps({k: str(v) for k, v in (span.attributes or {}).items()}))
        texts.extend(str(e.attributes) for e in span.events)
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = [str(row) for row in db.execute("SELECT * FROM attempts")]
    assert any("'auth'" in r for r in rows) and any("'network'" in r for r in rows)
    texts.extend(rows)
    echoed = [t for t in texts if "Incorrect key" in t or "upstream said" in t]
    assert echoed, "the providers' messages that echoed the key were seen (redacted)"
    assert len(keys) == 5
    assert [(k, t) for t in texts for k in (*keys.values(), SIM_KEY) if k in t] == []
