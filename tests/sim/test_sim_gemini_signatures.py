"""Thought signatures in the simulator, as the real Gemini API hands them out and checks them.

A thinking model signs the first function call of its answer; a Gemini 3 model rejects the next
request when the first function call of a step in the current turn comes back without its
signature (or with one it never issued for that call). The official SDK, which keeps the
signature in its chat history, gets through; a client that drops it gets the real 400.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import types

from uniwizard_sim import gemini
from uniwizard_sim.app import RunningSimulator

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)
GEMINI_3 = "gemini-3-pro-preview"
TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ]
    }
]
ASK = {"role": "user", "parts": [{"text": "call get_weather for Lima"}]}


async def generate(
    sim: RunningSimulator, model: str, contents: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    url = f"{sim.url}/gemini/v1beta/models/{model}:generateContent"
    async with aiohttp.ClientSession() as http:
        body = {"contents": contents, "tools": TOOLS}
        async with http.post(url, json=body, headers={"x-goog-api-key": "k"}) as resp:
            return resp.status, await resp.json()


def second_turn(call_part: dict[str, Any]) -> list[dict[str, Any]]:
    answer = {"name": "get_weather", "response": {"output": "sunny"}}
    return [
        ASK,
        {"role": "model", "parts": [call_part]},
        {"role": "user", "parts": [{"functionResponse": answer}]},
    ]


async def test_a_thinking_model_signs_its_function_call(sim: RunningSimulator) -> None:
    status, body = await generate(sim, GEMINI_3, [ASK])
    assert status == 200
    part = body["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"] == {"name": "get_weather", "args": {"city": "sim-city"}}
    assert part["thoughtSignature"] == gemini.thought_signature("get_weather", {"city": "sim-city"})
    # a model that does not think signs nothing
    status, body = await generate(sim, "gemini-2.0-flash", [ASK])
    assert "thoughtSignature" not in body["candidates"][0]["content"]["parts"][0]


async def test_gemini_3_rejects_a_replayed_call_without_its_signature(
    sim: RunningSimulator,
) -> None:
    _, first = await generate(sim, GEMINI_3, [ASK])
    signed = first["candidates"][0]["content"]["parts"][0]
    assert (await generate(sim, GEMINI_3, second_turn(signed)))[0] == 200

    unsigned = {"functionCall": signed["functionCall"]}
    status, body = await generate(sim, GEMINI_3, second_turn(unsigned))
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["message"].startswith(
        "Function call is missing a thought_signature in functionCall parts."
    )
    assert "`default_api:get_weather` , position 2" in body["error"]["message"]

    moved = {**unsigned, "thoughtSignature": gemini.thought_signature("get_weather", {})}
    status, body = await generate(sim, GEMINI_3, second_turn(moved))
    assert (status, body["error"]["message"]) == (400, "Corrupted thought signature.")

    garbled = {**unsigned, "thoughtSignature": "not base64!"}
    status, body = await generate(sim, GEMINI_3, second_turn(garbled))
    assert status == 400 and body["error"]["message"] == (
        "Invalid value at 'contents[1].parts[0].thought_signature' (TYPE_BYTES), "
        "Base64 decoding failed"
    )

    # the documented bypass values are accepted, as by the real API
    for bypass in sorted(gemini.BYPASS_SIGNATURES):
        dummy = {**unsigned, "thoughtSignature": bypass}
        assert (await generate(sim, GEMINI_3, second_turn(dummy)))[0] == 200


async def test_only_the_current_turn_is_checked_and_gemini_2_5_does_not_check(
    sim: RunningSimulator,
) -> None:
    _, first = await generate(sim, GEMINI_3, [ASK])
    unsigned = {"functionCall": first["candidates"][0]["content"]["parts"][0]["functionCall"]}
    earlier = [*second_turn(unsigned), {"role": "model", "parts": [{"text": "Sunny."}]}]
    # a new user text starts a new turn: the unsigned call before it is not checked
    status, _ = await generate(
        sim, GEMINI_3, [*earlier, {"role": "user", "parts": [{"text": "Thanks"}]}]
    )
    assert status == 200
    assert (await generate(sim, "gemini-2.5-flash", second_turn(unsigned)))[0] == 200


async def test_the_official_sdk_keeps_the_signature_and_gets_through(
    sim: RunningSimulator,
) -> None:
    c = genai.Client(
        api_key="g-test",
        http_options=types.HttpOptions(
            base_url=sim.sdk_base_url("gemini", "gemini"), api_version="v1beta", timeout=10_000
        ),
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool.model_validate(TOOLS[0])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    chat = c.aio.chats.create(model=GEMINI_3, config=config)
    first = await chat.send_message("call get_weather for Lima")
    assert first.function_calls and first.function_calls[0].name == "get_weather"
    reply = types.Part.from_function_response(name="get_weather", response={"output": "sunny"})
    second = await chat.send_message(reply)
    assert second.text
    replayed = sim.requests("gemini")[-1]["body"]["contents"][1]["parts"][0]
    signature = gemini.thought_signature("get_weather", {"city": "sim-city"})
    # the SDK sends the bytes back (as URL-safe base64): the very signature it was given
    assert replayed["thoughtSignature"].replace("-", "+").replace("_", "/") == signature
