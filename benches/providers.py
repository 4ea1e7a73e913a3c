"""Upstream client speed: abllm's OpenAIProvider (pooled aiohttp) vs the official openai client.

The peer is ``openai.AsyncOpenAI`` (httpx underneath), the client most proxies would reach for.
Both call the same zero-delay fake OpenAI upstream, which runs in its own process pinned to core
0 while the load runs on core 1, at concurrency 1, 16 and 64, streaming and not. Prints one JSON
object: requests/s and p50/p99 latency (ms) per client, mode and concurrency.

    .venv/bin/python benches/providers.py [--requests 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from abllm.config import LLMConfig
from abllm.providers import ChatRequest, OpenAIProvider

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "A short answer."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
}
_BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
_CHUNKS = [
    {**_BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    *[
        {**_BASE, "choices": [{"index": 0, "delta": {"content": w}}]}
        for w in ("A ", "short ", "answer.")
    ],
    {**_BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {**_BASE, "choices": [], "usage": ANSWER["usage"]},
]
STREAM = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in _CHUNKS) + b"data: [DONE]\n\n"
BODY = json.dumps(ANSWER).encode()


def serve(port: int) -> None:
    """The fake upstream (runs in the child process)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("stream"):
            return web.Response(body=STREAM, content_type="text/event-stream")
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


async def _load(
    call: Callable[[], Awaitable[None]], concurrency: int, total: int
) -> dict[str, float]:
    latencies: list[float] = []
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - t) * 1000)

    for _ in range(min(50, total)):  # warm-up: open the pools
        await call()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(q[98], 3),
    }


async def _bench(base_url: str, total: int) -> dict[str, Any]:
    import openai  # the peer

    llm = LLMConfig(provider="openai", model="gpt-4o-mini", base_url=base_url)
    messages = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]
    results: dict[str, Any] = {}
    provider = OpenAIProvider(base_url)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    try:
        for stream in (False, True):
            req = ChatRequest(model="gpt-4o-mini", messages=messages, stream=stream)

            async def ours(req: ChatRequest = req) -> None:
                if req.stream:
                    async for _ in provider.stream(req, llm, 10.0):
                        pass
                else:
                    await provider.complete(req, llm, 10.0)

            async def peer(stream: bool = stream) -> None:
                if stream:
                    chunks = await client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=messages,  # type: ignore[arg-type]
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    async for _ in chunks:
                        pass
                else:
                    await client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=messages,  # type: ignore[arg-type]
                    )

            mode = "stream" if stream else "non_stream"
            for concurrency in (1, 16, 64):
                key = f"{mode}_c{concurrency}"
                results[key] = {
                    "abllm_openai_provider_aiohttp": await _load(ours, concurrency, total),
                    "peer_openai_client_httpx": await _load(peer, concurrency, total),
                }
    finally:
        await provider.aclose()
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _pin(0)
        serve(args.serve)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        _pin(1)
        results = asyncio.run(_bench(f"http://127.0.0.1:{port}/v1", args.requests))
    finally:
        server.terminate()
        server.wait(5)
    print(
        json.dumps({"bench": "providers", "requests": args.requests, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
