"""uniwizard_sim — a deterministic LLM provider simulator (OpenAI, Anthropic, Gemini wire formats).

Run it: ``python -m uniwizard_sim --host 127.0.0.1 --port 8090``, or in-process with
:func:`uniwizard_sim.app.start_simulator` / :func:`uniwizard_sim.app.running_simulator`.

URL layout: every backend gets a path prefix, the *target*
(``[A-Za-z0-9_-]+``); the dialect is chosen by the rest of the path
(:func:`uniwizard_sim.urls.base_url`):

- OpenAI / OpenAI-compatible: ``http://HOST:PORT/{target}/v1`` (``/chat/completions``, ``/models``)
- Anthropic: ``http://HOST:PORT/{target}/v1`` (``/messages``, ``/models``)
- Gemini: ``http://HOST:PORT/{target}/v1beta``
  (``/models/{m}:generateContent``, ``/models/{m}:streamGenerateContent?alt=sse``, ``/models``)

Official SDK configuration (:func:`uniwizard_sim.urls.sdk_base_url`)::

    openai.OpenAI(base_url=f"{root}/{target}/v1", api_key="k", max_retries=0)
    anthropic.Anthropic(base_url=f"{root}/{target}", api_key="k", max_retries=0)
        # the SDK appends /v1/messages itself; it sends x-api-key and anthropic-version
    genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{root}/{target}/", api_version="v1beta"))
        # the SDK builds {base_url}v1beta/models/{m}:generateContent and sends x-goog-api-key

Auth: OpenAI-style ``Authorization: Bearer <non-empty>``; Anthropic ``x-api-key`` +
``anthropic-version``; Gemini ``x-goog-api-key`` or ``?key=``. The target ``local``
(llama.cpp) needs no auth.

Tokens: :func:`uniwizard_sim.textgen.count_tokens` (words + punctuation marks);
prompt usage is :func:`uniwizard_sim.textgen.count_prompt_tokens` over the request's
text pieces. Faults: see :mod:`uniwizard_sim.faults`; control API: :mod:`uniwizard_sim.app`.

Structured output: OpenAI ``response_format``, Anthropic ``output_config.format`` (or the beta
``output_format``) and Gemini ``generationConfig.responseMimeType`` / ``responseJsonSchema`` /
``responseSchema`` are validated like the real APIs and answered with JSON text
(:func:`uniwizard_sim.textgen.structured_text`, :mod:`uniwizard_sim.schema_instance`).
"""

from uniwizard_sim.textgen import count_prompt_tokens, count_tokens
from uniwizard_sim.urls import base_url, sdk_base_url

__all__ = ["base_url", "count_prompt_tokens", "count_tokens", "sdk_base_url"]
