"""The provider interface: one request shape, one response shape, one Protocol.

Every provider speaks the OpenAI Chat Completions format at this boundary, whatever its wire
format upstream, so the gateway measures and returns answers the same way for all of them. The
shape follows httpx's ``BaseTransport``: a small Protocol, real implementations (OpenAI-compatible,
Anthropic) and an in-package fake (``sim``) that needs no network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from abllm.config.llm import LLMConfig

#: One OpenAI ``chat.completion.chunk`` dict. The last chunk of a stream carries ``usage``
#: (and ``choices: []``) when the upstream reports it.
StreamChunk = dict[str, Any]

#: ``ProviderError.error_type`` values the providers raise.
ERROR_TYPES = (
    "timeout",
    "rate_limited",
    "upstream_5xx",
    "upstream_4xx",
    "bad_response",
    "connection",
    "auth",
    "circuit_open",
)


@dataclass(frozen=True)
class ChatRequest:
    """One chat call as the gateway hands it to a provider, already shaped by the variant.

    ``params`` holds extra OpenAI parameters passed through as-is (``response_format``, ``tools``,
    ``seed``, ``user``, ...). ``unit_id`` and ``trace_id`` make the ``sim`` provider deterministic;
    ``attempt`` is the retry number (0 first), so a simulated transient error is drawn afresh on
    each retry instead of repeating forever.

    >>> ChatRequest(model="sim-small", messages=[{"role": "user", "content": "hi"}]).stream
    False
    """

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    unit_id: str | None = None
    trace_id: str | None = None
    attempt: int = 0

    def to_openai_body(self) -> dict[str, Any]:
        """The OpenAI Chat Completions request body; ``params`` win over the named fields.

        Streaming bodies ask for the final usage chunk (``stream_options.include_usage``) so
        token counts are known for streams too.
        """
        body: dict[str, Any] = {"model": self.model, "messages": self.messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.stop:
            body["stop"] = list(self.stop)
        body.update(self.params)
        body["model"] = self.model
        body["stream"] = self.stream
        if self.stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        else:
            body.pop("stream_options", None)
        return body


@dataclass
class ChatResponse:
    """A finished (non-streaming) call: the OpenAI ``chat.completion`` body plus what we measure.

    ``latency_ms`` and ``ttft_ms`` are set only by providers that know the time better than a
    wall clock can: the ``sim`` provider reports its simulated timings there, so a demo run with
    ``time_scale`` < 1 still records realistic latencies. Real providers leave them None.
    """

    body: dict[str, Any]
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None
    model: str
    latency_ms: float | None = None
    ttft_ms: float | None = None

    @property
    def content(self) -> str | None:
        """The first choice's message text, if any."""
        choices = self.body.get("choices") or []
        if not choices:
            return None
        message = choices[0].get("message") or {}
        text = message.get("content")
        return text if isinstance(text, str) else None

    @classmethod
    def from_openai_body(cls, body: dict[str, Any], model: str) -> ChatResponse:
        """Read usage and finish reason out of an OpenAI ``chat.completion`` body."""
        usage = body.get("usage") or {}
        choices = body.get("choices") or [{}]
        return cls(
            body=body,
            input_tokens=_int_or_none(usage.get("prompt_tokens")),
            output_tokens=_int_or_none(usage.get("completion_tokens")),
            finish_reason=choices[0].get("finish_reason"),
            model=str(body.get("model") or model),
        )


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def usage_of(chunk: StreamChunk) -> tuple[int | None, int | None] | None:
    """``(input_tokens, output_tokens)`` if this stream chunk carries a usage block, else None."""
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    return _int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens"))


def chunk_text(chunk: StreamChunk) -> str:
    """The content text a stream chunk adds ("" for role-only, finish and usage chunks).

    The gateway's TTFT is the time to the first chunk where this is non-empty.
    """
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    delta = choices[0].get("delta") or {}
    text = delta.get("content")
    return text if isinstance(text, str) else ""


@runtime_checkable
class Provider(Protocol):
    """An LLM backend that answers OpenAI-format chat requests.

    Implementations raise :class:`abllm.errors.ProviderError` with an ``error_type`` from
    :data:`ERROR_TYPES`; they never put an API key in a message.

    >>> import asyncio
    >>> from abllm.config import LLMConfig
    >>> from abllm.providers import SimProvider
    >>> llm = LLMConfig(model="sim-small", sim={"time_scale": 0, "error_rate": 0})
    >>> req = ChatRequest(model="sim-small", messages=[{"role": "user", "content": "hi"}])
    >>> asyncio.run(SimProvider().complete(req, llm, 5.0)).finish_reason
    'stop'
    """

    name: str

    async def complete(self, req: ChatRequest, llm: LLMConfig, timeout_s: float) -> ChatResponse:
        """Answer ``req`` within ``timeout_s`` seconds (total, connection included)."""
        ...

    def stream(
        self, req: ChatRequest, llm: LLMConfig, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        """Yield OpenAI ``chat.completion.chunk`` dicts; the last carries ``usage``.

        Errors before the first chunk and mid-stream are raised from the iterator.
        """
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...
