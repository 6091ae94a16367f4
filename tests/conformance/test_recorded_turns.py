"""Provider state that must survive a turn, checked against real recorded two-turn
conversations (``extra_recordings.json``): what the real client sent back on the second turn,
and the real API accepted, is what our adapter sends back after reading the first answer.

* Gemini 3 (``gemini-3-pro-preview``, streamed): the first answer is a function call with a
  ``thoughtSignature``; the second request carries it back on that function call part.
* Claude with thinking (``claude-sonnet-4``): the first answer is a signed thinking block, text
  and a tool call; the second request repeats the thinking block, unchanged, first in the
  assistant turn.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.conformance import recorded
from uniwizard.config_types import BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.providers.base import ParsedResponse
from uniwizard.providers.stream import StreamParser, parse_reply
from uniwizard.types import BlindRequest, Message, Role, ToolCall, ToolDef

EXTRA = json.loads((recorded.DATA / "extra_recordings.json").read_text(encoding="utf-8"))
CONVERSATIONS = EXTRA["conversations"]


def backend(provider: str, model: str) -> BackendConfig:
    base = (
        "https://example.invalid/v1beta" if provider == "gemini" else "https://example.invalid/v1"
    )
    return BackendConfig(key="k", provider=provider, url=base, model=model)


def read(provider: str, turn: dict[str, Any]) -> ParsedResponse:
    adapter = get_adapter(provider)
    body = turn["response_body"].encode("utf-8")
    if turn["response_content_type"].startswith("text/event-stream"):
        parser = StreamParser(adapter)
        parser.feed(body)
        parser.end()
        result = parser.result
    else:
        result = parse_reply(adapter, 200, {}, body)
    assert isinstance(result, ParsedResponse), result
    return result


def second_turn(ask: str, call: ToolCall, answer: str, text: str = "") -> tuple[Message, ...]:
    return (
        Message(Role.USER, ask),
        Message(Role.ASSISTANT, text, tool_calls=(call,)),
        Message(Role.TOOL, answer, tool_call_id=call.id),
    )


def b64bytes(value: str) -> bytes:
    return base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_"))


def test_gemini_3_signature_goes_back_on_its_function_call() -> None:
    conv = CONVERSATIONS["gemini-3-tool-thought-signature"]
    first, second = conv["turns"]
    answer = read("gemini", first)
    (call,) = answer.tool_calls
    assert (call.name, json.loads(call.arguments_json)) == ("get_country", {})
    assert answer.finish_reason == "tool_calls" and answer.raw_finish_reason == "STOP"
    assert answer.usage is not None
    assert (answer.usage.output_tokens, answer.usage.reasoning_tokens) == (10 + 110, 110)

    tool = ToolDef("get_country", "", json.dumps({"type": "object", "properties": {}}))
    request = BlindRequest(
        messages=second_turn(
            "What is the capital of the user country? Call the tool", call, "Mexico"
        ),
        tools=(tool,),
    )
    built = get_adapter("gemini").build_request(
        backend("gemini", conv["model"]), request, "key", stream=True
    )
    assert built.url.endswith(second["request_path"] + "?alt=sse")
    assert built.json is not None
    (model_turn,) = [c for c in built.json["contents"] if c["role"] == "model"]
    (part,) = model_turn["parts"]
    recorded_part = second["request_model_content"]["parts"][0]
    # the same bytes the real client sent back (it re-encoded them URL-safe)
    assert b64bytes(part["thoughtSignature"]) == b64bytes(recorded_part["thoughtSignature"])
    assert part["functionCall"]["name"] == recorded_part["functionCall"]["name"]
    assert part["functionCall"]["args"] == recorded_part["functionCall"]["args"]

    final = read("gemini", second)
    assert final.text == "The capital of Mexico is Mexico City."
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (165, 8)  # the last chunk's


def test_claude_thinking_block_goes_back_first_and_unchanged() -> None:
    conv = CONVERSATIONS["anthropic-thinking-tool-use"]
    first, second = conv["turns"]
    answer = read("anthropic", first)
    (call,) = answer.tool_calls
    assert (call.id, call.name) == ("toolu_01YGzqpRE16Vricda3Aqcejo", "get_user_country")
    # the thinking is not the answer's text
    assert answer.text == json.loads(first["response_body"])["content"][1]["text"]
    state = json.loads(call.provider_state)
    thinking = json.loads(first["response_body"])["content"][0]
    assert state == {"provider": "anthropic", "thinking": [thinking]}

    tool = ToolDef("get_user_country", "", json.dumps({"type": "object", "properties": {}}))
    request = BlindRequest(
        messages=second_turn(
            "What is the largest city in the user country?", call, "Mexico", answer.text
        ),
        tools=(tool,),
    )
    built = get_adapter("anthropic").build_request(
        backend("anthropic", conv["model"]), request, "key", stream=False
    )
    assert built.json is not None
    (assistant,) = [m for m in built.json["messages"] if m["role"] == "assistant"]
    # exactly what the real client sent back and the real API took
    assert assistant == second["request_assistant_message"]

    final = read("anthropic", second)
    assert final.text.startswith("Based on the information that you're from Mexico")
    assert final.provider_refusal is False and final.raw_finish_reason == "end_turn"


def test_state_from_one_provider_is_not_sent_to_another() -> None:
    """A Claude tool call replayed to Gemini carries no thinking blocks (and gets Gemini's
    bypass signature); a Gemini call replayed to Claude carries no signature."""
    conv = CONVERSATIONS["anthropic-thinking-tool-use"]
    (claude_call,) = read("anthropic", conv["turns"][0]).tool_calls
    body = (
        get_adapter("gemini")
        .build_request(
            backend("gemini", "gemini-3-pro-preview"),
            BlindRequest(messages=second_turn("Where?", claude_call, "Mexico")),
            "key",
            stream=False,
        )
        .json
    )
    assert body is not None
    part = body["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thinking" not in json.dumps(body)

    (gemini_call,) = read(
        "gemini", CONVERSATIONS["gemini-3-tool-thought-signature"]["turns"][0]
    ).tool_calls
    body = (
        get_adapter("anthropic")
        .build_request(
            backend("anthropic", "claude-sonnet-4-0"),
            BlindRequest(messages=second_turn("Where?", gemini_call, "Mexico")),
            "key",
            stream=False,
        )
        .json
    )
    assert body is not None
    assert [b["type"] for b in body["messages"][1]["content"]] == ["tool_use"]
