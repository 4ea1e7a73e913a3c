"""Translation between the OpenAI Chat Completions format and Anthropic's Messages API.

Pure functions, no I/O, so each mapping is tested on its own. Request: system (and developer)
messages become ``system``; ``max_tokens`` is required upstream (default
:data:`DEFAULT_MAX_TOKENS`); ``stop`` becomes ``stop_sequences``; temperature is clipped to
Anthropic's 0..1; ``user`` becomes ``metadata.user_id``; OpenAI tools, tool calls and tool
results become ``tools``, ``tool_use`` and ``tool_result`` blocks; image parts become image
blocks. OpenAI-only parameters without an equivalent (``seed``, penalties, ``logit_bias``,
``response_format``, ...) are dropped; any other parameter (``top_k``, ``thinking``, ...) passes
through. Response: text blocks join into ``message.content``, ``tool_use`` blocks become
``tool_calls``, ``usage.input_tokens`` (+ cache reads and writes) becomes ``prompt_tokens``,
``output_tokens`` ``completion_tokens``, and ``stop_reason`` a ``finish_reason``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from abllm.errors import ProviderError
from abllm.providers.base import ChatRequest, StreamChunk

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_DROPPED = frozenset(
    {
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "response_format",
        "parallel_tool_calls",
        "stream_options",
        "service_tier",
        "store",
        "modalities",
        "reasoning_effort",
        "max_completion_tokens",
        "max_tokens",
        "stop",
        "user",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "messages",
        "model",
        "stream",
        "temperature",
        "top_p",
    }
)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> str | list[dict[str, Any]]:
    """OpenAI message content (string or parts) as Anthropic content."""
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            blocks.append(_image_block(part))
        else:
            blocks.append(part)
    return blocks


def _assistant(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls") or []
    if not calls:
        return {"role": "assistant", "content": _blocks(message.get("content") or "")}
    blocks: list[dict[str, Any]] = []
    text = _text(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": json.loads(arguments) if isinstance(arguments, str) else arguments,
            }
        )
    return {"role": "assistant", "content": blocks}


def _messages(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "assistant":
            out.append(_assistant(message))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": _text(message.get("content")),
            }
            # Consecutive tool results answer one assistant turn: one user message holds them.
            last = out[-1] if out else None
            if (
                last
                and last["role"] == "user"
                and isinstance(last["content"], list)
                and all(b.get("type") == "tool_result" for b in last["content"])
            ):
                last["content"].append(result)
                continue
            out.append({"role": "user", "content": [result]})
        else:
            out.append({"role": "user", "content": _blocks(message.get("content"))})
    return system, out


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        function = tool.get("function", tool)
        spec = {
            "name": function.get("name", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    mapped: dict[str, Any] | None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        mapped = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        mapped = {"type": "auto"} if parallel is False else None
    if mapped is not None and parallel is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    return mapped


def to_anthropic(req: ChatRequest, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """The Messages API request body for an OpenAI-format request."""
    params = req.params
    if int(params.get("n") or 1) > 1:
        raise ProviderError(
            "anthropic does not support n > 1", error_type="upstream_4xx", status=400
        )
    system, messages = _messages(req.messages)
    max_tokens = (
        req.max_tokens
        or params.get("max_completion_tokens")
        or params.get("max_tokens")
        or default_max_tokens
    )
    body: dict[str, Any] = {"model": req.model, "messages": messages, "max_tokens": max_tokens}
    if system:
        body["system"] = "\n\n".join(system)
    temperature = req.temperature if req.temperature is not None else params.get("temperature")
    if temperature is not None:
        body["temperature"] = min(float(temperature), 1.0)
    top_p = req.top_p if req.top_p is not None else params.get("top_p")
    if top_p is not None:
        body["top_p"] = top_p
    stop = req.stop or params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("user"):
        body["metadata"] = {**(params.get("metadata") or {}), "user_id": str(params["user"])}
    if params.get("tools"):
        body["tools"] = _tools(params["tools"])
    choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
    if choice is not None and params.get("tools"):
        body["tool_choice"] = choice
    for name, value in params.items():
        if name not in _DROPPED and name not in body:
            body[name] = value
    if req.stream:
        body["stream"] = True
    return body


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    prompt = sum(
        int(usage.get(k) or 0)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion = int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.get("cache_read_input_tokens"):
        out["prompt_tokens_details"] = {"cached_tokens": int(usage["cache_read_input_tokens"])}
    return out


def from_anthropic(data: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` body for a Messages API answer (KeyError if malformed)."""
    if data.get("type") != "message" or not isinstance(data["content"], list):
        raise KeyError("type/content")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data["content"]:
        if block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input") or {})
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return {
        "id": data["id"],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(data.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": _usage(data.get("usage") or {}),
    }


def stream_error(model: str, error: Any) -> ProviderError:
    """Classify an ``event: error`` sent inside a stream (overloaded, api or rate-limit error)."""
    kind = error.get("type", "") if isinstance(error, dict) else ""
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    text = f"anthropic model {model}: upstream {kind or 'error'} mid-stream: {message[:300]}"
    if kind == "rate_limit_error":
        return ProviderError(text, error_type="rate_limited", status=429)
    if kind in ("overloaded_error", "api_error", ""):
        return ProviderError(text, error_type="upstream_5xx", status=502)
    return ProviderError(text, error_type="upstream_4xx", status=502)


class StreamTranslator:
    """Turns Messages API stream events into OpenAI ``chat.completion.chunk`` dicts.

    message_start → role chunk; content_block_start (tool_use) and content_block_delta
    (text_delta, input_json_delta) → content/tool_call deltas; message_delta → finish chunk;
    message_stop → the usage chunk (``choices: []``), after which :attr:`done` is True.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.output_tokens: int | None = None
        self.done = False
        self._tools: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> StreamChunk:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def feed(self, event: str, data: dict[str, Any]) -> list[StreamChunk]:
        """The chunks one event yields (often none); raises ProviderError on ``error``."""
        kind = data.get("type", event)
        if kind == "message_start":
            message = data["message"]
            self.id = message.get("id", "")
            self.model = message.get("model") or self.model
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools.setdefault(data.get("index", 0), len(self._tools))
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self._tools.get(data.get("index", 0), 0)
                part = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [part]})]
            return []
        if kind == "message_delta":
            usage = data.get("usage") or {}
            self.usage.update({k: v for k, v in usage.items() if v is not None})
            stop = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH_REASONS.get(stop or "", "stop"))]
        if kind == "message_stop":
            self.done = True
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = _usage(self.usage)
            return [usage_chunk]
        if kind == "error":
            raise stream_error(self.model, data.get("error"))
        return []  # ping, content_block_stop, and event types added later
