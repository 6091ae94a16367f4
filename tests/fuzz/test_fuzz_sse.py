"""Fuzz the SSE decoder: any bytes, split anywhere, never raise and decode the same events."""

from __future__ import annotations

import os

from hypothesis import example, given, settings
from hypothesis import strategies as st

from uniwizard.providers.sse import SSEDecoder, SSEEvent

_FIELDS = [b"data", b"event", b"id", b"retry", b"", b"dat", b":", b"data ", b"\xef\xbb\xbfdata"]
_ENDINGS = [b"\n", b"\r\n", b"\r", b"\n\n", b"\r\r", b"\r\n\r\n", b""]
_VALUES = st.one_of(
    st.binary(max_size=20),
    st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"[DONE]", b'{"a": 1}', b"\xe2\x82", b"\xac", b"\xff\xfe", b" ", b"12"]),
)

# The profile registered in conftest.py ("ci" by default, HYPOTHESIS_PROFILE=deep to hunt),
# applied to these tests only.
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_FIELDS),
                st.sampled_from([b":", b": ", b"", b"::"]),
                _VALUES,
                st.sampled_from(_ENDINGS),
            ),
            max_size=12,
        )
    )
    body = b"".join(f + s + v + e for f, s, v, e in parts)
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    return body


STREAMS = st.one_of(_lines(), st.binary(max_size=200))


def _decode(raw: bytes, cuts: list[int]) -> tuple[list[SSEEvent], str, int | None]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    last = 0
    for cut in sorted({min(c, len(raw)) for c in cuts}):
        events.extend(decoder.feed(raw[last:cut]))
        last = cut
    events.extend(decoder.feed(raw[last:]))
    events.extend(decoder.close())
    return events, decoder.last_event_id, decoder.retry_ms


@FUZZ
@given(raw=STREAMS, cuts=st.lists(st.integers(0, 250), max_size=12))
@example(raw=b"data: a\r", cuts=[8])
@example(raw=b"data: \xe2\x82\xac\r\n\r\n", cuts=[7, 8, 10])
@example(raw=b"\xef\xbb\xbfdata: x\n\n", cuts=[1, 2])
def test_sse_decoding_is_invariant_to_how_the_bytes_are_split(raw: bytes, cuts: list[int]) -> None:
    whole = _decode(raw, [])
    split = _decode(raw, cuts)
    assert split == whole
    one_by_one = _decode(raw, list(range(len(raw))))
    assert one_by_one == whole
    for event in whole[0]:
        assert isinstance(event, SSEEvent)
        assert isinstance(event.data, str) and isinstance(event.event, str)
        assert event.event  # "message" when the stream names none
        assert "\r" not in event.event and "\n" not in event.event
        assert "\r" not in event.data  # lines end at CR, LF or CRLF; data joins with LF


@FUZZ
@given(raw=STREAMS, cuts=st.lists(st.integers(0, 250), max_size=6))
def test_sse_dispatch_matches_blank_lines(raw: bytes, cuts: list[int]) -> None:
    """Every event comes from data lines: no data, no event (the spec)."""
    events, _, retry = _decode(raw, cuts)
    if b"data" not in raw:
        assert events == []
    assert retry is None or retry >= 0
