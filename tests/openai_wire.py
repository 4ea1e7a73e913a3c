"""OpenAI Chat Completions wire bodies shared by the fake upstreams of the test suites."""

from __future__ import annotations

import json
from typing import Any


def completion(model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` body answering ``text``."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def sse_events(
    model: str, text: str, usage: dict[str, int], *, step: int, include_usage: bool
) -> list[bytes]:
    """SSE ``data:`` events of a streamed answer: role, ``text`` in ``step``-sized pieces, stop,
    then the usage-only chunk when asked for (no ``[DONE]``: callers may insert faults first)."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": text[i : i + step]}) for i in range(0, len(text), step)]
    events.append(chunk({}, "stop"))
    if include_usage:
        events.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
    return events
