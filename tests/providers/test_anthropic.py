"""The Anthropic provider: OpenAI ↔ Messages API translation, over a fake upstream and pure."""

from __future__ import annotations

import asyncio
import json
import traceback
from typing import Any

import pytest

from abllm.config import LLMConfig
from abllm.errors import ProviderError
from abllm.providers import AnthropicProvider, ChatRequest, Provider, chunk_text, usage_of
from abllm.providers.anthropic_format import StreamTranslator, from_anthropic, to_anthropic

from .fakes import FakeUpstream

KEY = "sk-ant-test-SECRETkey0123456789"
ENV = "ABLLM_TEST_ANTHROPIC_KEY"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a thing up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, KEY)


def _req(**kw: Any) -> ChatRequest:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "hello there"},
    ]
    return ChatRequest(model="claude-3-5-haiku-20241022", messages=messages, **kw)


def _run(
    script: list[str], req: ChatRequest, stream: bool, timeout_s: float = 5.0
) -> tuple[Any, FakeUpstream, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    async def main() -> tuple[Any, FakeUpstream]:
        async with FakeUpstream(script) as fake:
            provider = AnthropicProvider(fake.base_url)
            llm = LLMConfig(
                provider="anthropic", model=req.model, base_url=fake.base_url, api_key_env=ENV
            )
            try:
                if stream:
                    async for chunk in provider.stream(req, llm, timeout_s):
                        got.append(chunk)
                    return None, fake
                return await provider.complete(req, llm, timeout_s), fake
            except ProviderError as exc:
                return exc, fake
            finally:
                await provider.aclose()

    result, fake = asyncio.run(main())
    return result, fake, got


# -- pure translation ----------------------------------------------------------------------------
def test_request_translation() -> None:
    params = {
        "user": "u1",
        "top_k": 5,
        "seed": 3,
        "presence_penalty": 0.1,
        "response_format": {"type": "json_object"},
    }
    body = to_anthropic(_req(temperature=1.5, top_p=0.8, stop=["END"], params=params))
    assert body["system"] == "Be brief.\n\nAnswer in English."
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert body["max_tokens"] == 1024  # required upstream: default
    assert body["temperature"] == 1.0  # Anthropic's range is 0..1
    assert body["top_p"] == 0.8
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u1"}
    assert body["top_k"] == 5
    for dropped in ("seed", "presence_penalty", "response_format", "user", "stream", "stop"):
        assert dropped not in body
    assert to_anthropic(_req(max_tokens=64))["max_tokens"] == 64
    assert to_anthropic(_req(params={"stop": "X"}))["stop_sequences"] == ["X"]
    assert to_anthropic(_req(stream=True))["stream"] is True
    with pytest.raises(ProviderError):
        to_anthropic(_req(params={"n": 2}))


def test_tools_tool_calls_and_images_translate() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "call_2", "content": "nothing"},
    ]
    params = {"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False}
    body = to_anthropic(ChatRequest(model="claude", messages=messages, params=params))
    user, assistant, results = body["messages"]
    assert user["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    assert user["content"][2]["source"] == {"type": "url", "url": "https://x/y.png"}
    assert assistant["content"][0] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "lookup",
        "input": {"q": "cat"},
    }
    assert [r["tool_use_id"] for r in results["content"]] == ["call_1", "call_2"]
    assert results["role"] == "user"
    assert body["tools"] == [
        {
            "name": "lookup",
            "input_schema": TOOLS[0]["function"]["parameters"],
            "description": "Look a thing up",
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_response_translation() -> None:
    data = {
        "id": "msg_9",
        "type": "message",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check. "},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 5},
    }
    body = from_anthropic(data)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check. "
    call = choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "lookup", "arguments": '{"q": "x"}'}
    assert body["usage"]["prompt_tokens"] == 15 and body["usage"]["completion_tokens"] == 4
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}
    for stop, finish in [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop")]:
        data2 = {**data, "content": [{"type": "text", "text": "x"}], "stop_reason": stop}
        assert from_anthropic(data2)["choices"][0]["finish_reason"] == finish
    with pytest.raises(KeyError):
        from_anthropic({"type": "error"})


def test_stream_translator_ignores_ping_and_raises_on_error() -> None:
    tr = StreamTranslator("m")
    assert tr.feed("ping", {"type": "ping"}) == []
    with pytest.raises(ProviderError) as info:
        tr.feed("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "x"}})
    assert info.value.error_type == "rate_limited"


# -- over the wire ------------------------------------------------------------------------------
def test_is_a_provider() -> None:
    assert isinstance(AnthropicProvider(), Provider)


def test_complete_over_the_wire() -> None:
    req = _req(temperature=0.3, max_tokens=200, stop=["###"])
    resp, fake, _ = _run([], req, stream=False)
    seen = fake.seen[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    assert seen.body["system"] == "Be brief.\n\nAnswer in English."
    assert (seen.body["temperature"], seen.body["max_tokens"]) == (0.3, 200)
    assert seen.body["stop_sequences"] == ["###"]
    assert "stream" not in seen.body
    assert resp.content == "echo: hello there"
    assert resp.body["object"] == "chat.completion"
    assert (resp.input_tokens, resp.output_tokens, resp.finish_reason) == (15, 6, "stop")


def test_tool_use_over_the_wire() -> None:
    resp, fake, _ = _run([], _req(params={"tools": TOOLS}), stream=False)
    assert fake.seen[0].body["tools"][0]["name"] == "lookup"
    assert resp.finish_reason == "tool_calls"
    assert resp.body["choices"][0]["message"]["tool_calls"][0]["id"] == "toolu_1"


def test_stream_over_the_wire() -> None:
    _, fake, chunks = _run([], _req(), stream=True)
    assert fake.seen[0].body["stream"] is True
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "msg_1" for c in chunks)
    assert "".join(chunk_text(c) for c in chunks) == "echo: hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert usage_of(chunks[-1]) == (15, 6)


def test_stream_tool_calls_over_the_wire() -> None:
    _, _, chunks = _run([], _req(params={"tools": TOOLS}), stream=True)
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0]["id"] == "toolu_1" and calls[0]["function"]["name"] == "lookup"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"q": "x"}
    assert {c["index"] for c in calls} == {0}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("script", "stream", "error_type"),
    [
        (["529"], False, "upstream_5xx"),
        (["500"], True, "upstream_5xx"),
        (["429"], False, "rate_limited"),
        (["malformed"], False, "bad_response"),
        (["malformed_chunk"], True, "bad_response"),
        (["error_event"], True, "upstream_5xx"),
        (["drop"], True, "connection"),
        (["drop"], False, "connection"),
        (["truncated"], True, "connection"),
    ],
)
def test_errors_are_classified(script: list[str], stream: bool, error_type: str) -> None:
    exc, _, _ = _run(script, _req(), stream=stream)
    assert isinstance(exc, ProviderError), exc
    assert exc.error_type == error_type


def test_timeout() -> None:
    exc, _, _ = _run(["slow"], _req(), stream=False, timeout_s=0.2)
    assert isinstance(exc, ProviderError) and exc.error_type == "timeout"


def test_key_never_in_errors() -> None:
    exc, _, _ = _run(["401_echo"], _req(), stream=False)
    assert isinstance(exc, ProviderError) and exc.error_type == "upstream_4xx"
    text = "".join(traceback.format_exception(exc))
    assert KEY not in text and "SECRETkey" not in text


def test_base_url_with_or_without_v1() -> None:
    assert AnthropicProvider("https://api.anthropic.com").url().endswith(".com/v1/messages")
    assert AnthropicProvider("https://api.anthropic.com/v1/").url().endswith(".com/v1/messages")
