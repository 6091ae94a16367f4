"""Unit tests of the pure fault model (uniwizard_sim.faults)."""

from __future__ import annotations

import pytest

from uniwizard_sim.faults import (
    HANG_CAP_SECONDS,
    KINDS,
    Fault,
    FaultError,
    FaultQueue,
    parse_fault,
    parse_rule_body,
)


def test_parse_status_with_retry_after() -> None:
    f = parse_fault({"kind": "status", "status": 429, "retry_after": 7})
    assert f == Fault(kind="status", status=429, retry_after=7.0)
    assert f.to_json() == {"kind": "status", "status": 429, "retry_after": 7.0}


def test_defaults_for_positional_and_hang() -> None:
    assert parse_fault({"kind": "cut"}).after_chunks == 1
    assert parse_fault({"kind": "malformed_chunk"}).after_chunks == 1
    stall = parse_fault({"kind": "stall"})
    assert stall.after_chunks == 1 and stall.seconds == HANG_CAP_SECONDS
    assert parse_fault({"kind": "hang"}).seconds == HANG_CAP_SECONDS
    assert parse_fault({"kind": "status", "status": 500}).after_chunks is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"kind": "nope"}, "unknown fault kind"),
        ({"kind": "status"}, "missing field(s) status"),
        ({"kind": "status", "status": 42}, "out of range"),
        ({"kind": "status", "status": "429"}, "must be an integer"),
        ({"kind": "delay"}, "missing field(s) seconds"),
        ({"kind": "delay", "seconds": -1}, "must be >= 0"),
        ({"kind": "delay", "seconds": True}, "must be a number"),
        ({"kind": "reset", "seconds": 1}, "unknown field(s) seconds"),
        ({"kind": "text"}, "missing field(s) text"),
        ({"kind": "text", "text": 5}, "must be a string"),
        ({"kind": "cut", "after_chunks": -1}, "out of range"),
        ("status", "must be a JSON object"),
    ],
)
def test_parse_errors(raw: object, fragment: str) -> None:
    with pytest.raises(FaultError, match=None) as exc:
        parse_fault(raw)
    assert fragment in str(exc.value)


def test_every_kind_parses_with_minimal_fields() -> None:
    minimal = {
        "status": {"status": 500},
        "delay": {"seconds": 0},
        "slow_first_token": {"seconds": 1},
        "slow_stream": {"seconds": 0.1},
        "text": {"text": "x"},
    }
    for kind in KINDS:
        assert parse_fault({"kind": kind, **minimal.get(kind, {})}).kind == kind


def test_rule_body_validation() -> None:
    target, fault, times, paths = parse_rule_body(
        {"target": "claude", "fault": {"kind": "reset"}, "times": 3, "paths": "all"}
    )
    assert (target, fault.kind, times, paths) == ("claude", "reset", 3, "all")
    assert parse_rule_body({"target": "x", "fault": {"kind": "reset"}})[2:] == (None, "completion")
    for bad in (
        {"fault": {"kind": "reset"}},
        {"target": "x", "fault": {"kind": "reset"}, "times": 0},
        {"target": "x", "fault": {"kind": "reset"}, "times": 1.5},
        {"target": "x", "fault": {"kind": "reset"}, "paths": "everything"},
        {"target": "x", "fault": {"kind": "reset"}, "extra": 1},
        [],
    ):
        with pytest.raises(FaultError):
            parse_rule_body(bad)


def test_queue_order_countdown_and_expiry() -> None:
    q = FaultQueue()
    a = q.add("gpt", parse_fault({"kind": "reset"}), times=2)
    q.add("gpt", parse_fault({"kind": "empty"}))
    assert a.id.startswith("f")
    assert [q.take("gpt", "completion") for _ in range(2)] == [a.fault, a.fault]
    assert q.take("gpt", "completion") == Fault(kind="empty")
    assert q.take("gpt", "completion") == Fault(kind="empty")  # unlimited
    assert len(q) == 1


def test_queue_target_and_path_matching() -> None:
    q = FaultQueue()
    q.add("claude", parse_fault({"kind": "reset"}))
    q.add("gpt", parse_fault({"kind": "empty"}), paths="models")
    q.add("*", parse_fault({"kind": "truncated"}), times=1, paths="all")
    assert q.take("claude", "completion") == Fault(kind="reset")
    assert q.take("claude", "models") == Fault(kind="truncated")  # wildcard, all paths
    assert q.take("claude", "models") is None  # wildcard used up
    assert q.take("gpt", "completion") is None
    assert q.take("gpt", "models") == Fault(kind="empty")
    assert q.take("other", "completion") is None


def test_queue_clear() -> None:
    q = FaultQueue()
    q.add("a", parse_fault({"kind": "reset"}))
    q.add("b", parse_fault({"kind": "reset"}))
    q.add("b", parse_fault({"kind": "empty"}))
    assert q.clear("b") == 2
    assert [r.target for r in q.rules()] == ["a"]
    assert q.clear() == 1
    assert q.take("a", "completion") is None
    rule = q.add_json({"target": "a", "fault": {"kind": "text", "text": "t"}, "times": 1})
    assert rule.to_json() == {
        "id": rule.id,
        "target": "a",
        "fault": {"kind": "text", "text": "t"},
        "times": 1,
        "paths": "completion",
    }
