"""The same requests through ``curl`` (a real subprocess): what the README shows works as shown."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.edge.conftest import running_edge
from tests.stack import running_stack

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed on this machine")
TOKEN = "edge-curl-token-0123456789"


async def curl(*args: str) -> tuple[str, str]:
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "-sS",
        "--max-time",
        "30",
        "-D",
        "-",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()
    head, _, body = out.decode().partition("\r\n\r\n")
    return head.lower(), body


async def test_curl_unary_stream_and_models(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack, running_edge(stack, token=TOKEN) as edge:
        url = f"{edge.base_url}/chat/completions"
        auth = ("-H", f"Authorization: Bearer {TOKEN}")
        data = json.dumps(
            {"model": "auto", "messages": [{"role": "user", "content": "Who was Augustus?"}]}
        )
        head, body = await curl(url, *auth, "-H", "Content-Type: application/json", "-d", data)
        assert head.startswith("http/1.1 200")
        assert "x-uniwizard-backend: " in head and "x-uniwizard-cost-usd: " in head
        completion = ChatCompletion.model_validate(json.loads(body), strict=True)
        assert "Simulated answer from" in (completion.choices[0].message.content or "")

        streamed = data[:-1] + ', "stream": true, "stream_options": {"include_usage": true}}'
        head, body = await curl(
            "-N", url, *auth, "-H", "Content-Type: application/json", "-d", streamed
        )
        assert "content-type: text/event-stream" in head
        events = [e.removeprefix("data: ") for e in body.split("\n\n") if e.strip()]
        assert events[-1] == "[DONE]"
        chunks = [
            ChatCompletionChunk.model_validate(json.loads(e), strict=True) for e in events[:-1]
        ]
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

        head, body = await curl(f"{edge.base_url}/models", *auth)
        assert json.loads(body)["data"][0]["id"] == "auto"
        head, body = await curl(url, "-d", data)  # no token
        assert (
            head.startswith("http/1.1 401") and json.loads(body)["error"]["code"] == "unauthorized"
        )
