"""``POST /v1/chat/completions`` as a raw ASGI endpoint, dispatched in front of the FastAPI app.

Why not a FastAPI route: the hot path must add ≤ 0.5 ms and serve ≥ 3,000 requests/s on one
core. Starlette's routing, request object, exception middleware and response classes
cost tens of microseconds per request before our code runs; FastAPI with a request model measured
≈ 4,000 req/s for a bare proxy here against ≈ 6,600 without (DESIGN.md). This endpoint reads the
body with ``receive``, answers with ``send``, and leaves every other path to FastAPI
(``abllm.server.AbllmApp`` dispatches), so admin routes keep FastAPI's conveniences. Nothing
wraps it, so it turns any unexpected exception into a 500 itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from abllm.errors import AbllmError, NotFound, ProviderError, ValidationError
from abllm.gateway.core import Gateway
from abllm.gateway.request import MAX_BODY_BYTES, BadRequest, parse_chat_call
from abllm.gateway.streaming import StreamSession

log = logging.getLogger("abllm.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHAT_PATH = "/v1/chat/completions"
_JSON = (b"content-type", b"application/json")
_SSE = (b"content-type", b"text/event-stream; charset=utf-8")
_NO_CACHE = (b"cache-control", b"no-cache")


def error_body(exc: AbllmError) -> tuple[int, bytes]:
    """HTTP status and OpenAI-shaped error body for an abllm error."""
    if isinstance(exc, ProviderError):
        status, kind = exc.status, "provider_error"
    elif isinstance(exc, NotFound):
        status, kind = 404, "invalid_request_error"
    elif isinstance(exc, ValidationError):
        status, kind = 400, "invalid_request_error"
    else:
        status, kind = 500, "server_error"
    error: dict[str, Any] = {"message": exc.message, "type": kind, "code": exc.code}
    error["param"] = exc.param if isinstance(exc, BadRequest) else None
    return status, orjson.dumps({"error": error})


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"body: over the limit of {MAX_BODY_BYTES} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers.append(_JSON)
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ChatCompletionsEndpoint:
    """The OpenAI-compatible chat endpoint over a :class:`Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._handle(scope, receive, send)
        except Exception:
            log.exception("unexpected error in the chat endpoint")
            body = orjson.dumps(
                {"error": {"message": "internal error", "type": "server_error", "code": None}}
            )
            # Fails (and is ignored) when the response had already started.
            with contextlib.suppress(Exception):
                await _respond(send, 500, body, [])

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        try:
            body = await _read_body(receive)
            headers = _abllm_headers(scope["headers"])
            call = parse_chat_call(body)
            routed = await gw.route(call, headers)
        except AbllmError as exc:
            status, payload = error_body(exc)
            await _respond(send, status, payload, [])
            return
        out_headers = routed.response_headers()
        if not call.stream:
            try:
                answer, rec = await gw.complete(routed, call)
            except AbllmError as exc:
                status, payload = error_body(exc)
                await _respond(send, status, payload, out_headers)
                return
            if rec.fallback:
                out_headers.append((b"x-abllm-fallback", b"true"))
            await _respond(send, 200, orjson.dumps(answer), out_headers)
            return
        session = StreamSession(gw, routed, call)
        try:
            await session.start()
        except AbllmError as exc:
            status, payload = error_body(exc)
            await _respond(send, status, payload, out_headers)
            return
        if session.rec.fallback:
            out_headers.append((b"x-abllm-fallback", b"true"))
        out_headers += [_SSE, _NO_CACHE]
        await send({"type": "http.response.start", "status": 200, "headers": out_headers})
        watcher: asyncio.Future[None] | None = None

        def watch() -> None:
            nonlocal watcher
            watcher = asyncio.ensure_future(_wait_disconnect(receive))

        chunks = session.chunks(on_block=watch)
        ended = False
        try:
            async for data in chunks:
                if watcher is not None and watcher.done():
                    session.aborted = True
                    break
                # The last batch closes the response in the same write (no empty final send).
                ended = session.ended
                await send({"type": "http.response.body", "body": data, "more_body": not ended})
        finally:
            await chunks.aclose()
            if watcher is not None:
                watcher.cancel()
        if not ended and not session.aborted:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b""})


def _abllm_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers the gateway reads (``x-abllm-*``, ``traceparent``), lower-cased.

    Clients send a dozen others (``x-stainless-*``, ``user-agent``, ...); skipping them without
    decoding saves a few microseconds a request. ASGI servers lower-case header names.
    """
    return {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in raw
        if k.startswith(b"x-abllm-") or k == b"traceparent"
    }


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
