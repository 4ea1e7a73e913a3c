"""``openai``: any server that speaks the OpenAI Chat Completions API (OpenAI, vLLM, Ollama, ...).

``llm.base_url`` is the API root including its version, as in the official client
(``https://api.openai.com/v1``, ``http://localhost:8000/v1``); the call goes to
``{base_url}/chat/completions``. Streams ask for ``stream_options.include_usage`` so the last
chunk carries the token counts, and must end with ``data: [DONE]``: a stream that stops before it
was cut (``connection``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from abllm.errors import ProviderError
from abllm.providers._http import (
    HTTPProvider,
    UpstreamError,
    bad_response,
    loads,
    redact,
    sse_events,
)
from abllm.providers.base import ChatRequest, ChatResponse, StreamChunk

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
_REASONING = re.compile(r"^(openai/)?(o\d|gpt-5)")


class OpenAIProvider(HTTPProvider):
    """An OpenAI-compatible upstream at one ``base_url``, over one pooled aiohttp session.

    >>> OpenAIProvider("http://127.0.0.1:8000/v1/").url()
    'http://127.0.0.1:8000/v1/chat/completions'
    """

    name = "openai"

    def __init__(self, base_url: str | None = None, *, limit: int = 256) -> None:
        super().__init__(base_url or DEFAULT_OPENAI_BASE_URL, limit=limit)
        self._url = f"{self.base_url}/chat/completions"

    def url(self) -> str:
        return self._url

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def body(self, req: ChatRequest) -> dict[str, Any]:
        body = req.to_openai_body()
        # OpenAI's reasoning models reject max_tokens and take max_completion_tokens instead.
        if "max_tokens" in body and _REASONING.match(req.model):
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        return body

    def parse(self, data: dict[str, Any], req: ChatRequest) -> ChatResponse:
        if "error" in data and "choices" not in data:
            raise _error_object(req.model, data["error"])
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise bad_response(self.name, req.model, "no choices in the answer")
        return ChatResponse.from_openai_body(data, req.model)

    async def chunks(
        self, resp: aiohttp.ClientResponse, req: ChatRequest
    ) -> AsyncIterator[StreamChunk]:
        async for _event, data in sse_events(resp.content):
            if data == "[DONE]":
                return
            try:
                chunk = loads(data)
            except ValueError:
                raise bad_response(self.name, req.model, "stream chunk is not valid JSON") from None
            if not isinstance(chunk, dict):
                raise bad_response(self.name, req.model, "stream chunk is not a JSON object")
            if "error" in chunk and "choices" not in chunk:
                raise _error_object(req.model, chunk["error"])
            yield chunk
        raise UpstreamError(
            f"openai model {req.model}: stream ended before data: [DONE]", "connection"
        )


def _error_object(model: str, error: Any) -> ProviderError:
    """An ``{"error": {...}}`` object sent with status 200 or inside a stream."""
    message = error.get("message") if isinstance(error, dict) else error
    detail = redact(str(message), None)[:300]
    return UpstreamError(f"openai model {model}: upstream error: {detail}", "upstream_5xx")
