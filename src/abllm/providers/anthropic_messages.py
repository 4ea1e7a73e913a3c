"""``anthropic``: the Messages API (``POST {base_url}/v1/messages``), spoken in OpenAI format.

The translation itself lives in :mod:`abllm.providers.anthropic_format`; this module is the
transport: headers ``x-api-key`` and ``anthropic-version``, and the SSE event loop. A stream must
end with ``message_stop``; one that stops before it was cut (``connection``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from abllm.providers._http import HTTPProvider, UpstreamError, bad_response, loads, sse_events
from abllm.providers.anthropic_format import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    StreamTranslator,
    from_anthropic,
    to_anthropic,
)
from abllm.providers.base import ChatRequest, ChatResponse, StreamChunk

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider(HTTPProvider):
    """Anthropic's Messages API at one ``base_url``, over one pooled aiohttp session.

    ``base_url`` is the API root (``https://api.anthropic.com``); a trailing ``/v1`` is accepted.

    >>> AnthropicProvider("http://127.0.0.1:9000/v1").url()
    'http://127.0.0.1:9000/v1/messages'
    """

    name = "anthropic"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        limit: int = 256,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        super().__init__(base_url or DEFAULT_ANTHROPIC_BASE_URL, limit=limit)
        root = self.base_url.removesuffix("/v1")
        self._url = f"{root}/v1/messages"
        self.default_max_tokens = default_max_tokens

    def url(self) -> str:
        return self._url

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if key:
            headers["x-api-key"] = key
        return headers

    def body(self, req: ChatRequest) -> dict[str, Any]:
        return to_anthropic(req, self.default_max_tokens)

    def parse(self, data: dict[str, Any], req: ChatRequest) -> ChatResponse:
        return ChatResponse.from_openai_body(from_anthropic(data), req.model)

    async def chunks(
        self, resp: aiohttp.ClientResponse, req: ChatRequest
    ) -> AsyncIterator[StreamChunk]:
        translator = StreamTranslator(req.model)
        async for event, data in sse_events(resp.content):
            try:
                payload = loads(data)
            except ValueError:
                raise bad_response(self.name, req.model, "stream event is not valid JSON") from None
            if not isinstance(payload, dict):
                raise bad_response(self.name, req.model, "stream event is not a JSON object")
            try:
                out = translator.feed(event, payload)
            except (KeyError, TypeError, AttributeError) as exc:
                raise bad_response(self.name, req.model, f"unexpected event ({exc!r})") from None
            for chunk in out:
                yield chunk
            if translator.done:
                return
        raise UpstreamError(
            f"anthropic model {req.model}: stream ended before message_stop", "connection"
        )
