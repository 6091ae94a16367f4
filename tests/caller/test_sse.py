"""The incremental SSE decoder against the WHATWG event-stream rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from uniwizard.providers.sse import SSEDecoder, SSEEvent


def decode(*chunks: bytes, close: bool = True) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [e for c in chunks for e in decoder.feed(c)]
    if close:
        events.extend(decoder.close())
    return events


def test_data_event_and_default_type() -> None:
    assert decode(b"data: hello\n\n") == [SSEEvent("message", "hello")]


def test_event_name_and_multiline_data() -> None:
    raw = b"event: content_block_delta\ndata: line one\ndata: line two\n\n"
    assert decode(raw) == [SSEEvent("content_block_delta", "line one\nline two")]


def test_crlf_cr_and_lf_line_endings() -> None:
    assert decode(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n") == [
        SSEEvent("message", "a"),
        SSEEvent("message", "b"),
        SSEEvent("message", "c"),
    ]


def test_cr_at_chunk_end_waits_for_a_following_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == []  # the \r\n ended the line; a lone \r is pending
    assert decoder.feed(b"\n") == [SSEEvent("message", "x")]


def test_comments_id_retry_and_unknown_fields() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b": keep-alive\nid: 42\nretry: 1500\nfoo: bar\ndata: {}\n\n")
    assert events == [SSEEvent("message", "{}", id="42")]
    assert decoder.last_event_id == "42"
    assert decoder.retry_ms == 1500


def test_field_without_colon_and_without_space() -> None:
    assert decode(b"data\n\n") == [SSEEvent("message", "")]  # a data line, empty value
    assert decode(b"data:x\n\n") == [SSEEvent("message", "x")]
    assert decode(b"data:  two spaces\n\n") == [SSEEvent("message", " two spaces")]


def test_bom_and_split_utf8() -> None:
    raw = "\ufeffdata: héllo 日本\n\n".encode()
    assert decode(*[raw[i : i + 1] for i in range(len(raw))]) == [SSEEvent("message", "héllo 日本")]


def test_event_without_data_is_not_dispatched_and_type_resets() -> None:
    assert decode(b"event: ping\n\ndata: x\n\n") == [SSEEvent("message", "x")]


def test_close_dispatches_a_complete_last_event_without_blank_line() -> None:
    assert decode(b"data: [DONE]\n") == [SSEEvent("message", "[DONE]")]


def test_close_discards_a_partial_line() -> None:
    assert decode(b'data: {"a":1}\n\ndata: {"cut') == [SSEEvent("message", '{"a":1}')]


def test_without_close_the_pending_event_stays_pending() -> None:
    assert decode(b"data: x\n", close=False) == []


TRANSCRIPT = (
    b": hello\r\n"
    b'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
    b"data: one\ndata: two\n\n"
    b"id: 7\rdata: \xe2\x9c\x93 done\r\r"
    b"data: [DONE]\n\n"
)


@given(st.lists(st.integers(min_value=1, max_value=len(TRANSCRIPT)), max_size=12))
def test_any_chunking_yields_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [
        TRANSCRIPT[a:b] for a, b in zip([0, *points], [*points, len(TRANSCRIPT)], strict=True)
    ]
    assert (
        decode(*chunks)
        == decode(TRANSCRIPT)
        == [
            SSEEvent("message_start", '{"type":"message_start"}'),
            SSEEvent("message", "one\ntwo"),
            SSEEvent("message", "✓ done", id="7"),
            SSEEvent("message", "[DONE]", id="7"),
        ]
    )
