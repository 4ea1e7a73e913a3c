"""The OpenAI-compatible provider against a fake upstream: translation, streaming, errors, keys."""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from abllm.config import LLMConfig
from abllm.errors import ProviderError
from abllm.providers import (
    ChatRequest,
    OpenAIProvider,
    Provider,
    ProviderRegistry,
    chunk_text,
    usage_of,
)

from .fakes import FakeUpstream

T = TypeVar("T")
KEY = "sk-test-SECRETkey0123456789"
ENV = "ABLLM_TEST_OPENAI_KEY"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, KEY)


def _llm(fake: FakeUpstream, **kw: Any) -> LLMConfig:
    return LLMConfig(
        provider="openai", model="gpt-4o-mini", base_url=fake.openai_url, api_key_env=ENV, **kw
    )


def _req(**kw: Any) -> ChatRequest:
    messages = [
        {"role": "system", "content": "Summarize in 2 sentences."},
        {"role": "user", "content": "hello there"},
    ]
    return ChatRequest(model="gpt-4o-mini", messages=messages, **kw)


def _with_fake(
    script: list[str], body: Callable[[FakeUpstream, OpenAIProvider], Awaitable[T]], **fake_kw: Any
) -> tuple[T, FakeUpstream]:
    async def main() -> tuple[T, FakeUpstream]:
        async with FakeUpstream(script, **fake_kw) as fake:
            provider = OpenAIProvider(fake.openai_url)
            try:
                return await body(fake, provider), fake
            finally:
                await provider.aclose()

    return asyncio.run(main())


async def _drain(
    provider: OpenAIProvider, req: ChatRequest, llm: LLMConfig, t: float = 5.0
) -> list[dict[str, Any]]:
    return [c async for c in provider.stream(req, llm, t)]


def _error(
    script: list[str], stream: bool, timeout_s: float = 5.0, **fake_kw: Any
) -> tuple[ProviderError, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    async def body(fake: FakeUpstream, provider: OpenAIProvider) -> ProviderError:
        try:
            if stream:
                async for c in provider.stream(_req(), _llm(fake), timeout_s):
                    got.append(c)
            else:
                await provider.complete(_req(), _llm(fake), timeout_s)
        except ProviderError as exc:
            return exc
        raise AssertionError("no ProviderError raised")

    exc, _ = _with_fake(script, body, **fake_kw)
    return exc, got


def test_is_a_provider() -> None:
    assert isinstance(OpenAIProvider("http://x/v1"), Provider)


def test_complete_sends_variant_params_and_reads_usage() -> None:
    params = {"seed": 7, "response_format": {"type": "json_object"}, "user": "u1"}
    req = _req(temperature=0.2, top_p=0.9, max_tokens=50, stop=["END"], params=params)

    async def body(fake: FakeUpstream, provider: OpenAIProvider) -> Any:
        return await provider.complete(req, _llm(fake), 5.0)

    resp, fake = _with_fake([], body)
    seen = fake.seen[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body["model"] == "gpt-4o-mini"
    assert seen.body["messages"] == req.messages
    assert (seen.body["temperature"], seen.body["top_p"], seen.body["max_tokens"]) == (0.2, 0.9, 50)
    assert seen.body["stop"] == ["END"]
    assert seen.body["seed"] == 7 and seen.body["user"] == "u1"
    assert seen.body["response_format"] == {"type": "json_object"}
    assert seen.body["stream"] is False and "stream_options" not in seen.body
    assert resp.content == "echo: hello there"
    assert (resp.input_tokens, resp.output_tokens, resp.finish_reason) == (11, 7, "stop")
    assert resp.body["object"] == "chat.completion"
    assert resp.latency_ms is None


def test_no_api_key_env_sends_no_authorization() -> None:
    async def body(fake: FakeUpstream, provider: OpenAIProvider) -> Any:
        llm = LLMConfig(provider="openai", model="m", base_url=fake.openai_url)
        return await provider.complete(_req(), llm, 5.0)

    _, fake = _with_fake([], body)
    assert "authorization" not in fake.seen[0].headers


def test_stream_yields_chunks_and_final_usage() -> None:
    async def body(fake: FakeUpstream, provider: OpenAIProvider) -> list[dict[str, Any]]:
        return await _drain(provider, _req(max_tokens=20), _llm(fake))

    chunks, fake = _with_fake([], body)
    assert fake.seen[0].body["stream"] is True
    assert fake.seen[0].body["stream_options"] == {"include_usage": True}
    assert fake.seen[0].body["max_tokens"] == 20
    assert "".join(chunk_text(c) for c in chunks) == "echo: hello there"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert usage_of(chunks[-1]) == (11, 7)


def test_pooled_session_reuses_connections() -> None:
    async def body(fake: FakeUpstream, _: OpenAIProvider) -> None:
        registry = ProviderRegistry()
        llm = _llm(fake)
        provider = registry.get(llm)
        assert provider is registry.get(llm.model_copy(update={"model": "gpt-4o"}))
        assert provider is not registry.get(llm.model_copy(update={"base_url": "http://h/v1"}))
        for _ in range(3):
            await provider.complete(_req(), llm, 5.0)
        await registry.aclose()

    _, fake = _with_fake([], body)
    assert len({s.peer_port for s in fake.seen}) == 1  # one kept-alive connection


@pytest.mark.parametrize("stream", [False, True])
def test_500_is_upstream_5xx(stream: bool) -> None:
    exc, _ = _error(["500"], stream)
    assert exc.error_type == "upstream_5xx" and exc.status == 502
    assert "HTTP 500" in exc.message and "upstream says 500" in exc.message


@pytest.mark.parametrize("stream", [False, True])
def test_429_is_rate_limited_with_retry_after(stream: bool) -> None:
    exc, _ = _error(["429"], stream)
    assert exc.error_type == "rate_limited" and exc.status == 429
    assert getattr(exc, "retry_after", None) == 0.0


def test_400_is_upstream_4xx_and_keeps_status() -> None:
    exc, _ = _error(["400"], False)
    assert exc.error_type == "upstream_4xx" and exc.status == 400


@pytest.mark.parametrize("stream", [False, True])
def test_timeout(stream: bool) -> None:
    loop_time: list[float] = []

    async def body(fake: FakeUpstream, provider: OpenAIProvider) -> ProviderError:
        start = asyncio.get_running_loop().time()
        try:
            if stream:
                await _drain(provider, _req(), _llm(fake), 0.2)
            else:
                await provider.complete(_req(), _llm(fake), 0.2)
        except ProviderError as exc:
            loop_time.append(asyncio.get_running_loop().time() - start)
            return exc
        raise AssertionError("no timeout")

    exc, _ = _with_fake(["slow"], body, slow_s=1.0)
    assert exc.error_type == "timeout" and exc.status == 504
    assert loop_time[0] < 0.6


def test_stream_stalling_mid_way_times_out() -> None:
    exc, got = _error(["stall"], True, timeout_s=0.3, slow_s=1.0)
    assert exc.error_type == "timeout"
    assert got  # the first chunks arrived before the stall


@pytest.mark.parametrize(("mode", "stream"), [("malformed", False), ("malformed_chunk", True)])
def test_malformed_json_is_bad_response(mode: str, stream: bool) -> None:
    exc, _ = _error([mode], stream)
    assert exc.error_type == "bad_response" and exc.status == 502


@pytest.mark.parametrize(
    ("mode", "stream"), [("huge", False), ("huge", True), ("huge_event", True)]
)
def test_answers_over_the_size_cap_are_refused(mode: str, stream: bool) -> None:
    exc, _ = _error([mode], stream)
    assert exc.error_type == "bad_response" and "bytes" in exc.message


def test_error_object_inside_stream() -> None:
    exc, _ = _error(["error_event"], True)
    assert exc.error_type == "upstream_5xx" and "overloaded" in exc.message


@pytest.mark.parametrize("stream", [False, True])
def test_connection_dropped_mid_answer(stream: bool) -> None:
    exc, got = _error(["drop"], stream)
    assert exc.error_type == "connection"
    if stream:
        assert got  # chunks arrived before the drop


def test_stream_ending_without_done_is_connection_error() -> None:
    exc, got = _error(["truncated"], True)
    assert exc.error_type == "connection" and "[DONE]" in exc.message
    assert usage_of(got[-1]) == (11, 7)


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> ProviderError:
        provider = OpenAIProvider(f"http://127.0.0.1:{port}/v1")
        llm = LLMConfig(provider="openai", model="m", base_url=provider.base_url)
        try:
            await provider.complete(_req(), llm, 2.0)
        except ProviderError as exc:
            return exc
        finally:
            await provider.aclose()
        raise AssertionError("no error")

    assert asyncio.run(main()).error_type == "connection"


@pytest.mark.parametrize("stream", [False, True])
def test_api_key_never_in_errors_or_logs(stream: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    exc, _ = _error(["401_echo"], stream)
    assert exc.error_type == "upstream_4xx" and exc.status == 502
    assert "Incorrect API key provided" in exc.message
    trace = "".join(traceback.format_exception(exc))
    for text in (str(exc), repr(exc), exc.message, caplog.text, trace):
        assert KEY not in text
        assert "SECRETkey" not in text


def test_missing_key_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV)

    async def body(fake: FakeUpstream, provider: OpenAIProvider) -> ProviderError:
        try:
            await provider.complete(_req(), _llm(fake), 5.0)
        except ProviderError as exc:
            return exc
        raise AssertionError("no error")

    exc, fake = _with_fake([], body)
    assert exc.error_type == "auth" and ENV in exc.message
    assert fake.seen == []


def test_json_answer_to_a_stream_request_is_bad_response() -> None:
    exc, _ = _error(["json_for_stream"], True)
    assert exc.error_type == "bad_response" and "event stream" in exc.message


def test_reasoning_models_get_max_completion_tokens() -> None:
    assert OpenAIProvider().body(_req(max_tokens=9)) == {**_req(max_tokens=9).to_openai_body()}
    body = OpenAIProvider().body(replace(_req(max_tokens=9), model="o3-mini"))
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body
    body = OpenAIProvider().body(replace(_req(), model="gpt-5-mini"))
    assert "max_completion_tokens" not in body and "max_tokens" not in body


def test_provider_survives_a_new_event_loop() -> None:
    """A registry made at startup may be used from a later loop (e.g. a test's asyncio.run)."""
    provider = OpenAIProvider("http://127.0.0.1:9/v1")

    async def once() -> Any:
        async with FakeUpstream() as fake:
            provider._url = f"{fake.openai_url}/chat/completions"
            llm = LLMConfig(provider="openai", model="m", base_url=fake.openai_url)
            return await provider.complete(_req(), llm, 5.0)

    assert asyncio.run(once()).content == "echo: hello there"
    assert asyncio.run(once()).content == "echo: hello there"  # a fresh session, new loop
    asyncio.run(provider.aclose())
