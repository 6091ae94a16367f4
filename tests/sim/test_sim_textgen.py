"""Unit tests of deterministic answers, token counting and stream framing helpers."""

from __future__ import annotations

from uniwizard_sim.common import Conversation, ToolDef
from uniwizard_sim.faults import parse_fault
from uniwizard_sim.sse import fault_position
from uniwizard_sim.textgen import (
    REFUSAL_TEXT,
    answer_text,
    count_prompt_tokens,
    count_tokens,
    plan_answer,
    split_chunks,
    tool_arguments,
    truncate_tokens,
)
from uniwizard_sim.urls import base_url, sdk_base_url


def conv(text: str = "hello world", **kw: object) -> Conversation:
    return Conversation(model="m", prompt_texts=("sys", text), last_user_text=text, **kw)  # type: ignore[arg-type]


def test_count_tokens() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0
    assert count_tokens("don't stop") == 4
    assert count_prompt_tokens(["a b", "c."]) == 4


def test_answer_is_deterministic_and_multi_sentence() -> None:
    a = answer_text("gpt-4o", "What is up?", 2)
    assert a == answer_text("gpt-4o", "What is up?", 2)
    assert a != answer_text("gpt-4o", "What is down?", 2)
    assert a.startswith("Simulated answer from gpt-4o: ")
    assert "I saw 2 attachments" in a
    assert a.count(". ") >= 3


def test_split_and_truncate() -> None:
    text = answer_text("m", "x", 0)
    chunks = split_chunks(text)
    assert "".join(chunks) == text and len(chunks) > 5
    assert split_chunks("") == ()
    assert truncate_tokens("Hello, world! Bye", 3) == "Hello, world"
    assert truncate_tokens("a b", 10) == "a b"
    assert truncate_tokens("a b", 0) == ""


def test_tool_arguments_from_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "n": {"type": "integer"},
            "mode": {"type": "string", "enum": ["r", "w"]},
            "flag": {"type": "BOOLEAN"},
            "opt": {"type": "string"},
        },
        "required": ["path", "n", "mode", "flag"],
    }
    assert tool_arguments(schema) == {"path": "sim-path", "n": 1, "mode": "r", "flag": True}
    assert tool_arguments({}) == {}


def test_plan_answer_normal_tool_and_limits() -> None:
    a = plan_answer(conv(), None, "call_1")
    assert a.text == answer_text("m", "hello world", 0)
    assert a.prompt_tokens == 3 and a.completion_tokens == count_tokens(a.text)
    assert a.finish == "stop"
    tools = (ToolDef("read_file", {}),)
    t = plan_answer(conv("please read_file now", tools=tools), None, "call_1")
    assert t.finish == "tool" and t.tool_call is not None and t.tool_call.name == "read_file"
    assert t.text is None
    assert plan_answer(conv("read_files", tools=tools), None, "c").tool_call is None
    lim = plan_answer(conv(max_tokens=4), None, "c")
    assert lim.finish == "length" and lim.completion_tokens == 4


def test_plan_answer_content_faults() -> None:
    c = conv()
    assert plan_answer(c, parse_fault({"kind": "empty"}), "c").text == ""
    assert plan_answer(c, parse_fault({"kind": "refusal_text"}), "c").text == REFUSAL_TEXT
    r = plan_answer(c, parse_fault({"kind": "refusal_signal", "reason": "SPII"}), "c")
    assert r.finish == "refusal" and r.refusal == REFUSAL_TEXT and r.safety_reason == "SPII"
    cf = plan_answer(
        c, parse_fault({"kind": "refusal_signal", "finish_reason": "content_filter"}), "c"
    )
    assert cf.finish == "content_filter"
    tr = plan_answer(c, parse_fault({"kind": "truncated"}), "c")
    assert (
        tr.finish == "length"
        and tr.text
        and tr.completion_tokens < count_tokens(answer_text("m", "hello world", 0))
    )
    assert plan_answer(c, parse_fault({"kind": "text", "text": "yo"}), "c").text == "yo"
    # wire-level faults leave the answer normal
    assert plan_answer(c, parse_fault({"kind": "cut"}), "c").finish == "stop"


def test_fault_position() -> None:
    kinds = ["meta", "content", "content", "content", "end", "done"]
    assert fault_position(kinds, 0) == 1
    assert fault_position(kinds, 1) == 2
    assert fault_position(kinds, 3) == 4
    assert fault_position(kinds, 99) == 4
    assert fault_position(["meta", "end", "done"], 2) == 1


def test_urls() -> None:
    root = "http://127.0.0.1:8090"
    assert base_url(root, "gemini", "gemini") == "http://127.0.0.1:8090/gemini/v1beta"
    assert base_url(root + "/", "gpt", "openai") == "http://127.0.0.1:8090/gpt/v1"
    assert base_url(root, "kimi", "openai_compatible") == "http://127.0.0.1:8090/kimi/v1"
    assert base_url(root, "claude", "anthropic") == "http://127.0.0.1:8090/claude/v1"
    assert sdk_base_url(root, "claude", "anthropic") == "http://127.0.0.1:8090/claude"
    assert sdk_base_url(root, "g", "gemini") == "http://127.0.0.1:8090/g/"
    for bad in (("a/b", "openai"), ("a", "cohere")):
        try:
            base_url(root, *bad)
        except ValueError:
            continue
        raise AssertionError(bad)
