"""A fake LLM upstream (OpenAI and Anthropic wire formats, SSE too) run in its own thread.

Behaviour is chosen per model: ``fake.modes[model] = "500"`` (every call) or
``fake.script[model] = ["500", "ok"]`` (one entry per call, then ``modes``/"ok"). Modes:
ok, json (answer is a JSON object), 500, 429, 400, slow (sleeps ``slow_s``), malformed (a
truncated JSON body), malformed_chunk (stream: an invalid JSON chunk after two content chunks),
drop (stream: connection closed after two content chunks; non-stream: closed mid-body),
slow_stream (stream: a pause of ``slow_s`` after two content chunks). A body key ``fake_mode``
(a variant's ``params``) overrides the model's mode for that call.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from openai_wire import completion, sse_events

USAGE_OPENAI = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
USAGE_ANTHROPIC = {"input_tokens": 12, "output_tokens": 6}
CHUNK_GAP_S = 0.003


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return str(m["content"])
    return ""


class Upstream:
    def __init__(self, slow_s: float = 2.0) -> None:
        self.slow_s = slow_s
        self.modes: dict[str, str] = {}
        self.script: dict[str, list[str]] = {}
        self.seen: list[Seen] = []
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Upstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._runner is not None
            await self._runner.cleanup()
            me = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not me:
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset(self) -> None:
        self.modes.clear()
        self.script.clear()
        self.seen.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._ready.set()
        self._loop.run_forever()

    def calls(self, model: str | None = None) -> list[Seen]:
        return [s for s in self.seen if model is None or s.body.get("model") == model]

    # -- behaviours ---------------------------------------------------------------------------
    def _mode(self, request: web.Request, body: dict[str, Any]) -> str:
        self.seen.append(Seen(request.path, dict(request.headers), body))
        forced = body.get("fake_mode")  # a variant's ``params`` can pick its own behaviour
        if isinstance(forced, str):
            return forced
        model = str(body.get("model"))
        script = self.script.get(model)
        if script:
            return script.pop(0)
        return self.modes.get(model, "ok")

    async def _early(self, mode: str) -> web.StreamResponse | None:
        if mode in ("500", "400"):
            return web.json_response({"error": {"message": f"upstream {mode}"}}, status=int(mode))
        if mode == "500_pii":  # an error text with a card number where a short cut would fall
            message = "x" * 290 + " card 4111 1111 1111 1111 and mail ann@example.com"
            return web.json_response({"error": {"message": message}}, status=500)
        if mode == "429":
            return web.json_response({"error": {"message": "slow down"}}, status=429)
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        if mode == "malformed":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        return None

    async def _stream(self, request: web.Request, events: list[bytes], mode: str) -> Any:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, event in enumerate(events):
            if mode == "drop" and i == 3:
                assert request.transport is not None
                request.transport.close()
                return resp
            await resp.write(event)
            await asyncio.sleep(self.slow_s if mode == "slow_stream" and i == 2 else CHUNK_GAP_S)
        await resp.write_eof()
        return resp

    async def _drop_body(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 500
        await resp.prepare(request)
        await resp.write(b'{"id": "chatcmpl-1", "cho')
        assert request.transport is not None
        request.transport.close()
        return resp

    @staticmethod
    def _text(mode: str, body: dict[str, Any]) -> str:
        if mode == "json":
            return json.dumps({"answer": _last_user(body), "confidence": 0.9})
        return f"echo: {_last_user(body)}"

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        mode = self._mode(request, body)
        early = await self._early(mode)
        if early is not None:
            return early
        text = self._text(mode, body)
        if not body.get("stream"):
            if mode == "drop":
                return await self._drop_body(request)
            return web.json_response(completion(body["model"], text, USAGE_OPENAI))
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        events = sse_events(body["model"], text, USAGE_OPENAI, step=5, include_usage=include)
        if mode == "malformed_chunk":
            events.insert(3, b"data: {oops\n\n")
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, events, mode)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        mode = self._mode(request, body)
        early = await self._early(mode)
        if early is not None:
            return early
        text = self._text(mode, body)
        if not body.get("stream"):
            if mode == "drop":
                return await self._drop_body(request)
            return web.json_response(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": USAGE_ANTHROPIC,
                }
            )

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": USAGE_ANTHROPIC["input_tokens"], "output_tokens": 1},
        }
        events = [
            event("message_start", {"message": message}),
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            ),
        ]
        events += [
            event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": text[i : i + 5]}},
            )
            for i in range(0, len(text), 5)
        ]
        events += [
            event("content_block_stop", {"index": 0}),
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": USAGE_ANTHROPIC["output_tokens"]},
                },
            ),
            event("message_stop", {}),
        ]
        return await self._stream(request, events, mode)
