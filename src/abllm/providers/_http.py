"""What the HTTP providers share: one pooled aiohttp session, SSE parsing, error classification.

aiohttp, not httpx: as a proxy's upstream client, httpx.AsyncClient falls from ~1,000 to ~550
requests/s as concurrency rises (encode/httpx#3215) while aiohttp reaches ~6,600 on the same
machine (DESIGN.md). Each provider instance owns one ``ClientSession`` for its ``base_url``, so
connections are reused across calls.

API keys are read from the environment variable that ``llm.api_key_env`` names, at call time,
and only ever placed in a request header: every message built here goes through :func:`redact`,
and transport exceptions are re-raised ``from None`` so no chained text can carry a header.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
from aiohttp.payload import BytesPayload

from abllm.config.llm import LLMConfig
from abllm.errors import ProviderError
from abllm.providers.base import ChatRequest, ChatResponse, StreamChunk

_KEY_SHAPES = re.compile(r"\b(sk-ant-|sk-|Bearer\s+)[\w\-*.]{6,}")
#: Upstream error text kept in a ProviderError. Generous on purpose: the gateway redacts PII
#: from the whole text before cutting it short (a cut first could split a card number).
_SNIPPET = 16_000
#: Largest upstream answer accepted (a whole body, or a whole stream); a longer one is refused
#: as ``bad_response`` instead of filling the gateway's memory.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: Largest single server-sent event.
MAX_EVENT_BYTES = 1024 * 1024


class UpstreamError(ProviderError):
    """A ProviderError from an HTTP upstream, with its HTTP status and ``Retry-After`` hint."""

    def __init__(
        self,
        message: str,
        error_type: str,
        status: int = 502,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, error_type=error_type, status=status)
        self.upstream_status = upstream_status
        self.retry_after = retry_after


def redact(text: str, secret: str | None) -> str:
    """Remove the key (and anything shaped like a provider key) from text meant for humans."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_SHAPES.sub(lambda m: m.group(1) + "***", text)


def api_key(llm: LLMConfig) -> str | None:
    """The key from the environment variable ``llm.api_key_env`` names (None when unset)."""
    if llm.api_key_env is None:
        return None
    value = os.environ.get(llm.api_key_env)
    if not value:
        raise UpstreamError(
            f"environment variable {llm.api_key_env} (llm.api_key_env) is not set",
            error_type="auth",
        )
    return value


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _upstream_message(raw: bytes) -> str:
    """The ``error.message`` of a JSON error body (OpenAI and Anthropic), else the raw text."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return text.strip()


def status_error(
    provider: str,
    model: str,
    status: int,
    raw: bytes,
    headers: Mapping[str, str],
    secret: str | None,
) -> UpstreamError:
    """Classify an HTTP error answer: 429 rate_limited, 408 timeout, 5xx upstream_5xx, other
    4xx upstream_4xx (the request's fault: retried never, counted against the breaker never).

    The gateway's own status: 429 stays 429, 408 becomes 504, a 400/413/422 (the caller's
    request was bad) stays, anything else becomes 502 Bad Gateway.
    """
    detail = redact(_upstream_message(raw), secret)[:_SNIPPET]
    message = f"{provider} model {model}: upstream returned HTTP {status}: {detail}"
    if status == 429:
        return UpstreamError(message, "rate_limited", 429, status, _retry_after(headers))
    if status == 408:
        return UpstreamError(message, "timeout", 504, status)
    if status >= 500:
        return UpstreamError(message, "upstream_5xx", 502, status, _retry_after(headers))
    own = status if status in (400, 413, 422) else 502
    return UpstreamError(message, "upstream_4xx", own, status)


def transport_error(
    provider: str, model: str, exc: BaseException, secret: str | None, timeout_s: float
) -> UpstreamError:
    """Classify an exception raised while talking to the upstream."""
    if isinstance(exc, TimeoutError):
        return UpstreamError(
            f"{provider} model {model}: no complete answer within the timeout of {timeout_s:g} s",
            "timeout",
            504,
        )
    detail = redact(f"{type(exc).__name__}: {exc}", secret)[:_SNIPPET]
    if isinstance(exc, AnswerTooLarge):
        return UpstreamError(f"{provider} model {model}: {exc}", "bad_response")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamError(f"{provider} model {model}: connection failed: {detail}", "connection")
    return UpstreamError(f"{provider} model {model}: malformed answer: {detail}", "bad_response")


def bad_response(provider: str, model: str, what: str) -> UpstreamError:
    """A well-transported answer whose content is not what the API promises."""
    return UpstreamError(f"{provider} model {model}: malformed answer: {what}", "bad_response")


class AnswerTooLarge(ValueError):
    """An upstream answer over :data:`MAX_ANSWER_BYTES` (or an event over the event cap)."""


async def read_capped(resp: aiohttp.ClientResponse, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The body, or :class:`AnswerTooLarge` once it passes ``limit`` bytes."""
    length = resp.content_length
    if length is not None:
        if length > limit:
            raise AnswerTooLarge(f"the answer is {length} bytes, over {limit}")
        return await resp.read()
    parts, size = [], 0
    async for block in resp.content.iter_any():
        size += len(block)
        if size > limit:
            raise AnswerTooLarge(f"the answer is over {limit} bytes")
        parts.append(block)
    return b"".join(parts)


async def sse_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as ``(event, data)`` pairs (WHATWG SSE: ``data:`` lines joined by \\n).

    Reads whatever the socket has (``iter_any``) and splits it into lines here: a 12-event
    stream usually arrives in one or two reads, and reading it line by line through
    ``StreamReader.readline`` costs an awaited call per line (≈ 200 µs a stream). Lines end at
    ``\\n`` (a trailing ``\\r`` is dropped), as with ``readline``.
    """
    event = ""
    data: list[str] = []
    rest = b""
    total = 0
    async for block in content.iter_any():
        total += len(block)
        if total > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(f"the stream is over {MAX_ANSWER_BYTES} bytes")
        if b"\n" not in block:
            rest += block
            if len(rest) > MAX_EVENT_BYTES:
                raise AnswerTooLarge(f"one stream event is over {MAX_EVENT_BYTES} bytes")
            continue
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for raw in lines:
            line = raw.decode("utf-8").rstrip("\r")
            if not line:
                if data:
                    yield event or "message", "\n".join(data)
                event, data = "", []
                continue
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if rest:
        line = rest.decode("utf-8").rstrip("\r\n")
        if line and line[0] != ":":
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if data:
        yield event or "message", "\n".join(data)


def loads(raw: bytes | str) -> Any:
    """``json.loads`` through orjson (≈ 3x faster); what orjson refuses (NaN, Infinity) goes
    through ``json`` so the answers accepted are the same. One difference: an integer over 64
    bits reads as a float (the gateway's orjson encoder could not send it back anyway)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(body: dict[str, Any]) -> bytes:
    """``json.dumps`` through orjson; ``json`` for what orjson cannot encode (non-str keys,
    integers over 64 bits)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body).encode()


def loads_object(provider: str, model: str, raw: bytes | str) -> dict[str, Any]:
    """Parse a JSON object or raise ``bad_response``."""
    try:
        data = loads(raw)
    except ValueError:
        raise bad_response(provider, model, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_response(provider, model, "body is not a JSON object")
    return data


class HTTPProvider(ABC):
    """Base of the HTTP providers: pooled session, request, error mapping; subclasses translate.

    Subclasses set ``name`` and implement ``url``, ``headers``, ``body``, ``parse`` and
    ``chunks`` (wire format only); everything about transport and errors lives here.
    """

    name = "http"

    def __init__(self, base_url: str, *, limit: int = 256) -> None:
        self.base_url = base_url.rstrip("/")
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- wire format, per provider -------------------------------------------------------------
    @abstractmethod
    def url(self) -> str:
        """The endpoint every call posts to."""

    def headers(self, key: str | None) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def body(self, req: ChatRequest) -> dict[str, Any]:
        return req.to_openai_body()

    def parse(self, data: dict[str, Any], req: ChatRequest) -> ChatResponse:
        return ChatResponse.from_openai_body(data, req.model)

    @abstractmethod
    def chunks(self, resp: aiohttp.ClientResponse, req: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Translate the upstream's event stream into OpenAI chunks."""

    # -- transport -----------------------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        """The pooled session, created on first use inside the running event loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
            self._loop = loop
        return self._session

    def _post(
        self, req: ChatRequest, key: str | None, timeout_s: float
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        # A ready BytesPayload skips aiohttp's payload-registry lookup for bytes.
        payload = BytesPayload(dumps(self.body(req)), content_type="application/json")
        return self.session().post(
            self.url(),
            data=payload,
            headers=self.headers(key),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )

    async def complete(self, req: ChatRequest, llm: LLMConfig, timeout_s: float) -> ChatResponse:
        """One non-streaming call; see :class:`abllm.providers.Provider`."""
        key = api_key(llm)
        if req.stream:
            req = replace(req, stream=False)
        try:
            async with self._post(req, key, timeout_s) as resp:
                raw = await read_capped(resp)
                if resp.status >= 400:
                    raise status_error(self.name, req.model, resp.status, raw, resp.headers, key)
        except ProviderError:
            raise
        except Exception as exc:
            raise transport_error(self.name, req.model, exc, key, timeout_s) from None
        data = loads_object(self.name, req.model, raw)
        try:
            return self.parse(data, req)
        except ProviderError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise bad_response(self.name, req.model, f"unexpected shape ({exc!r})") from None

    async def stream(
        self, req: ChatRequest, llm: LLMConfig, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        """One streaming call; see :class:`abllm.providers.Provider`."""
        key = api_key(llm)
        if not req.stream:
            req = replace(req, stream=True)
        try:
            async with self._post(req, key, timeout_s) as resp:
                if resp.status >= 400:
                    raw = await read_capped(resp)
                    raise status_error(self.name, req.model, resp.status, raw, resp.headers, key)
                if resp.content_type == "application/json":
                    detail = redact(_upstream_message(await read_capped(resp)), key)[:_SNIPPET]
                    raise bad_response(self.name, req.model, f"expected an event stream: {detail}")
                async for chunk in self.chunks(resp, req):
                    yield chunk
        except ProviderError:
            raise
        except Exception as exc:
            raise transport_error(self.name, req.model, exc, key, timeout_s) from None

    async def aclose(self) -> None:
        """Close the pooled session (and its connections).

        A session made in an event loop that has since ended cannot be closed from another
        one: it is dropped (its sockets went with its loop).
        """
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
