"""The simulated provider: deterministic, shaped by the variant's SimProfile, OpenAI-format."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
from typing import Any

import pytest

from abllm.config import LLMConfig, SimProfile
from abllm.errors import ProviderError
from abllm.providers import (
    ChatRequest,
    Provider,
    SimProvider,
    chunk_text,
    plan,
    simulate_feedback,
    usage_of,
)


def _llm(**sim: Any) -> LLMConfig:
    return LLMConfig(model="sim-small", sim={"time_scale": 0, "error_rate": 0, **sim})


def _req(unit: str = "u1", **kw: Any) -> ChatRequest:
    msgs = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]
    return ChatRequest(model="sim-small", messages=msgs, unit_id=unit, **kw)


async def _collect(provider: SimProvider, req: ChatRequest, llm: LLMConfig) -> list[dict[str, Any]]:
    return [c async for c in provider.stream(req, llm, 30.0)]


def test_sim_is_a_provider() -> None:
    assert isinstance(SimProvider(), Provider)


def test_complete_is_deterministic_per_unit_and_request() -> None:
    sim, llm = SimProvider(), _llm()
    a = asyncio.run(sim.complete(_req("u1"), llm, 30.0))
    b = asyncio.run(sim.complete(_req("u1"), llm, 30.0))
    c = asyncio.run(sim.complete(_req("u2"), llm, 30.0))
    assert a.content == b.content and a.latency_ms == b.latency_ms
    assert (a.content, a.latency_ms) != (c.content, c.latency_ms)
    assert a.body["object"] == "chat.completion"
    assert a.body["usage"]["completion_tokens"] == a.output_tokens
    assert a.body["usage"]["prompt_tokens"] == a.input_tokens > 0
    assert a.finish_reason == "stop"
    assert a.ttft_ms is not None and a.latency_ms is not None and a.ttft_ms < a.latency_ms


def test_stream_matches_complete_and_ends_with_usage() -> None:
    sim, llm = SimProvider(), _llm()
    full = asyncio.run(sim.complete(_req(), llm, 30.0))
    chunks = asyncio.run(_collect(sim, _req(stream=True), llm))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(chunk_text(c) for c in chunks) == full.content
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert usage_of(chunks[-1]) == (full.input_tokens, full.output_tokens)
    assert len(chunks) > 3


def test_profile_shapes_latency_tokens_and_max_tokens() -> None:
    fast, slow = _llm(latency_ms=100), _llm(latency_ms=1000, output_tokens=400)
    p_fast = [plan(_req(f"u{i}"), fast).latency_ms for i in range(400)]
    p_slow = [plan(_req(f"u{i}"), slow).latency_ms for i in range(400)]
    assert 80 < statistics.median(p_fast) < 125
    assert 800 < statistics.median(p_slow) < 1250
    tokens = [plan(_req(f"u{i}"), slow).output_tokens for i in range(400)]
    assert 340 < statistics.mean(tokens) < 470
    capped = plan(_req("u1", max_tokens=5), slow)
    assert capped.output_tokens == 5 and capped.finish_reason == "length"


def test_time_scale_makes_real_waits() -> None:
    sim, llm = SimProvider(), _llm(latency_ms=200, latency_sigma=0, ttft_ms=50, time_scale=0.5)

    async def timed() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        resp = await sim.complete(_req(), llm, 30.0)
        assert resp.latency_ms == pytest.approx(200)
        return loop.time() - start, 0.1

    elapsed, expected = asyncio.run(timed())
    assert expected * 0.9 <= elapsed < expected + 0.15


def test_errors_follow_error_rate_and_vary_by_attempt() -> None:
    sim, llm = SimProvider(), _llm(error_rate=0.3)
    failed = 0
    kinds = set()
    for i in range(300):
        try:
            asyncio.run(sim.complete(_req(f"u{i}"), llm, 30.0))
        except ProviderError as exc:
            failed += 1
            kinds.add(exc.error_type)
            assert exc.status in (429, 502)
    assert 60 < failed < 120
    assert kinds == {"upstream_5xx", "rate_limited"}
    # a retry (next attempt) of a failed request draws its error afresh
    always = _llm(error_rate=0.5)
    outcomes = {plan(_req("u7", attempt=a), always).error_type is None for a in range(20)}
    assert outcomes == {True, False}


def test_stream_errors_before_first_chunk() -> None:
    sim, llm = SimProvider(), _llm(error_rate=1.0)
    with pytest.raises(ProviderError) as info:
        asyncio.run(_collect(sim, _req(stream=True), llm))
    assert info.value.error_type in ("upstream_5xx", "rate_limited")


def test_simulated_timeout() -> None:
    sim, llm = SimProvider(), _llm(latency_ms=5000, latency_sigma=0)
    with pytest.raises(ProviderError) as info:
        asyncio.run(sim.complete(_req(), llm, 1.0))
    assert info.value.error_type == "timeout"
    slow_decode = _llm(latency_ms=5000, latency_sigma=0, ttft_ms=100)
    got: list[dict[str, Any]] = []

    async def read() -> None:
        async for c in sim.stream(_req(stream=True), slow_decode, 1.0):
            got.append(c)

    with pytest.raises(ProviderError) as info:
        asyncio.run(read())
    assert info.value.error_type == "timeout" and got  # timed out mid-stream


def test_json_response_format_gives_valid_json() -> None:
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["summary", "score"],
    }
    params = {"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    resp = asyncio.run(SimProvider().complete(_req(params=params), _llm(), 30.0))
    data = json.loads(resp.content or "")
    assert isinstance(data["summary"], str) and isinstance(data["score"], int)
    obj = asyncio.run(
        SimProvider().complete(
            _req(params={"response_format": {"type": "json_object"}}), _llm(), 30
        )
    )
    assert isinstance(json.loads(obj.content or ""), dict)


def test_simulate_feedback_tracks_quality() -> None:
    rng = random.Random(42)
    good = SimProfile(quality=4.3)
    bad = SimProfile(quality=3.2)
    g = [simulate_feedback(good, rng) for _ in range(3000)]
    b = [simulate_feedback(bad, rng) for _ in range(3000)]
    assert statistics.mean(x["rating"] for x in g) > statistics.mean(x["rating"] for x in b) + 0.7
    assert all(1 <= x["rating"] <= 5 for x in g + b)
    assert sum(x["thumbs_up"] for x in g) > sum(x["thumbs_up"] for x in b)
    rate = SimProfile(thumbs_up_rate=0.9, task_completion_rate=0.2)
    r = [simulate_feedback(rate, rng) for _ in range(2000)]
    assert 0.86 < statistics.mean(x["thumbs_up"] for x in r) < 0.94
    assert 0.16 < statistics.mean(x["task_completed"] for x in r) < 0.24
