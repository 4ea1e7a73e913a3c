"""A fake LLM upstream on 127.0.0.1 that speaks the OpenAI and Anthropic wire formats (SSE too).

Each request takes the next behaviour from ``script`` ("ok" once the script is empty):
ok, 500, 529, 429, 400, 401_echo (echoes the caller's key in the error, as OpenAI does), slow,
malformed, drop (connection closed mid-answer), stall (stream: first chunk, then silence),
error_event (stream: an error event mid-stream), truncated (stream ends without its end marker),
json_for_stream (a JSON body where an event stream was asked for), huge (a 9 MB answer),
huge_event (stream: one 2 MB line without an end).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from openai_wire import completion, sse_events


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    peer_port: int


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


class FakeUpstream:
    """Use as ``async with FakeUpstream(script) as fake:``; ``fake.base_url`` is the root."""

    def __init__(self, script: list[str] | None = None, slow_s: float = 1.0) -> None:
        self.script = list(script or [])
        self.slow_s = slow_s
        self.seen: list[Seen] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def _next(self, request: web.Request, body: dict[str, Any]) -> str:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(Seen(request.path, headers, body, peer[1] if peer else 0))
        return self.script.pop(0) if self.script else "ok"

    async def __aenter__(self) -> FakeUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    # -- shared behaviours ---------------------------------------------------------------------
    async def _common(self, request: web.Request, mode: str) -> web.StreamResponse | None:
        if mode in ("500", "529", "400"):
            error = {"error": {"message": f"upstream says {mode}", "type": "api_error"}}
            return web.json_response(error, status=int(mode))
        if mode == "429":
            error = {"error": {"message": "slow down", "type": "rate_limit_error"}}
            return web.json_response(error, status=429, headers={"Retry-After": "0"})
        if mode == "401_echo":
            key = request.headers.get("Authorization", request.headers.get("x-api-key", ""))
            key = key.removeprefix("Bearer ")
            error = {"error": {"message": f"Incorrect API key provided: {key}", "type": "auth"}}
            return web.json_response(error, status=401)
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
            return None
        if mode == "malformed":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        return None

    async def _drop(self, request: web.Request, first: bytes) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(first)
        await asyncio.sleep(0.01)
        assert request.transport is not None
        request.transport.close()
        return resp

    async def _sse(
        self, request: web.Request, events: list[bytes], mode: str
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, event in enumerate(events):
            if mode == "drop" and i == 3:
                await asyncio.sleep(0.01)
                assert request.transport is not None
                request.transport.close()
                return resp
            if mode == "stall" and i == 2:
                await asyncio.sleep(self.slow_s)
            if mode == "truncated" and i == len(events) - 1:
                break
            await resp.write(event)
        await resp.write_eof()
        return resp

    # -- OpenAI --------------------------------------------------------------------------------
    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        mode = self._next(request, body)
        early = await self._common(request, mode)
        if early is not None:
            return early
        text = f"echo: {_last_user_text(body)}"
        if mode == "huge":
            text = "x" * 9_000_000
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if mode == "huge_event":
            return await self._sse(request, [b"data: " + b"y" * 2_000_000], mode)
        if mode == "huge" and body.get("stream"):
            piece = sse_events(
                body["model"], "z" * 900_000, usage, step=10**6, include_usage=False
            )[1]
            return await self._sse(request, [piece] * 10, mode)
        if not body.get("stream") or mode == "json_for_stream":
            if mode == "drop":
                return await self._drop(request, b'{"id": "chatcmpl-1", "choi')
            return web.json_response(completion(body["model"], text, usage))
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        events = sse_events(body["model"], text, usage, step=4, include_usage=include)
        if mode == "malformed_chunk":
            events.insert(2, b"data: {oops\n\n")
        if mode == "error_event":
            events.insert(2, b'data: {"error": {"message": "overloaded"}}\n\n')
        events.append(b"data: [DONE]\n\n")
        return await self._sse(request, events, mode)

    # -- Anthropic -----------------------------------------------------------------------------
    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        mode = self._next(request, body)
        early = await self._common(request, mode)
        if early is not None:
            return early
        text = f"echo: {_last_user_text(body)}"
        usage = {"input_tokens": 12, "output_tokens": 6, "cache_read_input_tokens": 3}
        tool = bool(body.get("tools"))
        stop_reason = "tool_use" if tool else "end_turn"
        if not body.get("stream"):
            if mode == "drop":
                return await self._drop(request, b'{"id": "msg_1", "type": "mess')
            content: list[dict[str, Any]] = [{"type": "text", "text": text}]
            if tool:
                content.append(
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}
                )
            return web.json_response(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                }
            )

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

        start_usage = {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 3}
        events = [
            event(
                "message_start",
                {
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "usage": start_usage,
                    }
                },
            ),
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            b'event: ping\ndata: {"type": "ping"}\n\n',
        ]
        for i in range(0, len(text), 5):
            delta = {"type": "text_delta", "text": text[i : i + 5]}
            events.append(event("content_block_delta", {"index": 0, "delta": delta}))
        events.append(event("content_block_stop", {"index": 0}))
        if tool:
            block = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}
            events.append(event("content_block_start", {"index": 1, "content_block": block}))
            for part in ('{"q": ', '"x"}'):
                delta = {"type": "input_json_delta", "partial_json": part}
                events.append(event("content_block_delta", {"index": 1, "delta": delta}))
            events.append(event("content_block_stop", {"index": 1}))
        events.append(
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": 6},
                },
            )
        )
        events.append(event("message_stop", {}))
        if mode == "error_event":
            error = {"error": {"type": "overloaded_error", "message": "Overloaded"}}
            events.insert(4, event("error", error))
        if mode == "malformed_chunk":
            events.insert(3, b"event: content_block_delta\ndata: {oops\n\n")
        return await self._sse(request, events, mode)
