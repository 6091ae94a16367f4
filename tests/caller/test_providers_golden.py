"""Every provider's golden files: request building, responses, error bodies, stream transcripts.

One parametrized set for all four adapters; provider-specific checks (probes, the official
SDKs reading our bodies) stay in ``test_providers_<provider>.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.caller import golden_util as g
from uniwizard.config_types import PROVIDERS
from uniwizard.providers import get_adapter

RUNNERS: dict[str, tuple[Callable[[Any, Path], None], str]] = {
    "request": (g.run_request_case, ".json"),
    "response": (g.run_response_case, ".json"),
    "error": (g.run_error_case, ".json"),
    "stream": (g.run_stream_case, ".sse"),
}
CASES = [
    pytest.param(provider, kind, path, id=f"{provider}-{path.stem}")
    for provider in PROVIDERS
    for kind, (_, suffix) in RUNNERS.items()
    for path in g.files(provider, kind, suffix)
]


@pytest.mark.parametrize(("provider", "kind", "path"), CASES)
def test_golden(provider: str, kind: str, path: Path) -> None:
    run, _ = RUNNERS[kind]
    run(get_adapter(provider), path)
