"""Cross-provider behaviour of the adapters that the goldens do not spell out."""

from __future__ import annotations

import pytest

from uniwizard.config_types import PROVIDERS, BackendConfig
from uniwizard.providers import get_adapter
from uniwizard.providers.base import UnsupportedInput
from uniwizard.providers.sse import SSEEvent
from uniwizard.types import BlindRequest, Message, Role, ToolCall, ToolDef


@pytest.mark.parametrize("provider", PROVIDERS)
def test_get_adapter_covers_every_configured_provider(provider: str) -> None:
    assert get_adapter(provider).name == provider


def test_get_adapter_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown provider"):
        get_adapter("cohere")


def test_openai_complete_needs_usage_after_finish_reason() -> None:
    state = get_adapter("openai").new_stream()
    state.feed(SSEEvent("message", '{"choices":[{"index":0,"delta":{"content":"hi"}}]}'))
    assert not state.finish_seen and not state.complete
    state.feed(SSEEvent("message", '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'))
    assert state.finish_seen and not state.complete  # no [DONE] yet
    usage = '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}'
    state.feed(SSEEvent("message", usage))
    assert state.complete  # complete without the [DONE] end marker
    result = state.finish()
    assert result.text == "hi" and result.usage is not None and result.usage.input_tokens == 3


def test_openai_stream_without_indexes_still_assembles_tool_calls() -> None:
    state = get_adapter("openai_compatible").new_stream()
    frames = [
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f",'
        '"arguments":"{\\"x\\":"}}]}}]}',
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}',
        '{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}',
    ]
    deltas = [d for f in frames for d in state.feed(SSEEvent("message", f))]
    assert [d.tool_call for d in deltas if d.tool_call] == [ToolCall("a", "f", '{"x":1}')]


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_invalid_tool_arguments_in_history_are_unsupported_input(provider: str) -> None:
    request = BlindRequest(
        messages=(
            Message(Role.USER, "go"),
            Message(Role.ASSISTANT, tool_calls=(ToolCall("c1", "f", "{not json"),)),
            Message(Role.TOOL, "ok", tool_call_id="c1"),
        )
    )
    backend = BackendConfig(key="k", provider=provider, url="https://x/v1", model="m")
    with pytest.raises(UnsupportedInput, match="'f'"):
        get_adapter(provider).build_request(backend, request, "key", stream=False)


def test_gemini_tool_result_for_unknown_call_is_unsupported_input() -> None:
    request = BlindRequest(messages=(Message(Role.TOOL, "ok", tool_call_id="nope"),))
    backend = BackendConfig(key="g", provider="gemini", url="https://x/v1beta", model="m")
    with pytest.raises(UnsupportedInput, match="nope"):
        get_adapter("gemini").build_request(backend, request, "key", stream=False)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_tool_schema_is_unsupported_input(provider: str) -> None:
    request = BlindRequest(
        messages=(Message(Role.USER, "go"),), tools=(ToolDef("t", parameters_json="[1]"),)
    )
    backend = BackendConfig(key="k", provider=provider, url="https://x/v1", model="m")
    with pytest.raises(UnsupportedInput, match="'t'"):
        get_adapter(provider).build_request(backend, request, "key", stream=False)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_output_tokens_default_and_override(provider: str) -> None:
    backend = BackendConfig(
        key="k", provider=provider, url="https://x/v1", model="m", max_output_tokens=77
    )
    adapter = get_adapter(provider)
    for asked, sent in ((0, 77), (5, 5)):
        request = BlindRequest(messages=(Message(Role.USER, "hi"),), max_output_tokens=asked)
        body = adapter.build_request(backend, request, None, stream=False).json
        assert body is not None
        assert sent in (
            body.get("max_tokens"),
            body.get("max_completion_tokens"),
            body.get("generationConfig", {}).get("maxOutputTokens"),
        )
