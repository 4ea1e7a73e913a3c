"""Retries with jittered backoff and the circuit breaker, alone and against a fake upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from abllm.config import LLMConfig
from abllm.errors import ProviderError
from abllm.providers import (
    BreakerRegistry,
    BreakerState,
    ChatRequest,
    ChatResponse,
    CircuitBreaker,
    CircuitOpenError,
    OpenAIProvider,
    RetryPolicy,
    StreamChunk,
    UpstreamError,
    call_with_retries,
    chunk_text,
    start_stream,
)

from .fakes import FakeUpstream

FAST = RetryPolicy(max_retries=2, base_delay_s=0.001, max_delay_s=0.01)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _err(kind: str) -> ProviderError:
    return ProviderError(f"fake {kind}", error_type=kind)


def _req() -> ChatRequest:
    return ChatRequest(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


# -- breaker state machine ---------------------------------------------------------------------
def test_breaker_opens_half_opens_and_closes() -> None:
    clock = Clock()
    b = CircuitBreaker("p/m", failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(2):
        b.before_call()
        b.record_failure(_err("upstream_5xx"))
    assert b.state is BreakerState.CLOSED and b.failures == 2
    b.record_failure(_err("timeout"))
    assert b.state is BreakerState.OPEN and b.opened_count == 1
    with pytest.raises(CircuitOpenError) as info:
        b.before_call()
    assert info.value.error_type == "circuit_open" and info.value.retry_in_s == pytest.approx(10)
    clock.now = 10.0
    assert b.state is BreakerState.HALF_OPEN
    b.before_call()  # the one trial call
    with pytest.raises(CircuitOpenError):
        b.before_call()  # no second trial while the first is in flight
    b.record_failure(_err("connection"))  # trial failed: open again for a full period
    assert b.state is BreakerState.OPEN and b.opened_count == 2
    clock.now = 15.0
    assert b.state is BreakerState.OPEN
    clock.now = 20.0
    b.before_call()
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.failures == 0


def test_breaker_ignores_caller_errors_and_success_resets_count() -> None:
    b = CircuitBreaker("p/m", failure_threshold=2)
    b.record_failure(_err("upstream_5xx"))
    b.record_failure(_err("upstream_4xx"))  # the upstream answered: healthy
    b.record_failure(_err("upstream_5xx"))
    assert b.state is BreakerState.CLOSED


def test_breaker_call_and_cancelled_trial_releases_slot() -> None:
    clock = Clock()
    b = CircuitBreaker("p/m", failure_threshold=1, reset_timeout_s=1, clock=clock)

    async def fail() -> None:
        raise _err("upstream_5xx")

    async def ok() -> str:
        return "ok"

    async def cancelled() -> None:
        raise asyncio.CancelledError

    async def main() -> None:
        with pytest.raises(ProviderError):
            await b.call(fail)
        with pytest.raises(CircuitOpenError):
            await b.call(ok)
        clock.now = 1.0
        with pytest.raises(asyncio.CancelledError):
            await b.call(cancelled)
        assert await b.call(ok) == "ok"  # the slot came back; the trial succeeds
        assert b.state is BreakerState.CLOSED

    asyncio.run(main())


def test_bad_settings_rejected() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)


def test_breaker_registry_keys_by_provider_base_url_and_model() -> None:
    reg = BreakerRegistry(failure_threshold=1)
    a = LLMConfig(provider="openai", model="gpt-4o", base_url="http://a/v1")
    assert reg.for_llm(a) is reg.for_llm(a.model_copy(update={"temperature": 0.1}))
    assert reg.for_llm(a) is not reg.for_llm(a.model_copy(update={"model": "gpt-4o-mini"}))
    assert reg.for_llm(a) is not reg.for_llm(a.model_copy(update={"base_url": "http://b/v1"}))
    reg.for_llm(a).record_failure()
    assert reg.states()["openai@http://a/v1/gpt-4o"] == "open"
    assert reg.for_llm(LLMConfig(model="sim-small")).name == "sim/sim-small"


# -- retries -----------------------------------------------------------------------------------
def test_retries_until_success_and_reports_each_retry() -> None:
    outcomes = [_err("rate_limited"), _err("upstream_5xx")]
    seen: list[tuple[int, float]] = []
    retries: list[tuple[int, str]] = []

    async def fn(attempt: int, remaining: float) -> str:
        seen.append((attempt, remaining))
        if outcomes:
            raise outcomes.pop(0)
        return "ok"

    result = asyncio.run(
        call_with_retries(fn, FAST, 5.0, on_retry=lambda n, e: retries.append((n, e.error_type)))
    )
    assert result == "ok"
    assert [a for a, _ in seen] == [0, 1, 2]
    assert all(0 < r <= 5.0 for _, r in seen) and seen[2][1] < seen[0][1]
    assert retries == [(1, "rate_limited"), (2, "upstream_5xx")]


@pytest.mark.parametrize(
    ("kind", "calls"), [("upstream_4xx", 1), ("timeout", 1), ("upstream_5xx", 3)]
)
def test_retry_gives_up_with_the_last_error(kind: str, calls: int) -> None:
    count = 0

    async def fn(attempt: int, remaining: float) -> str:
        nonlocal count
        count += 1
        raise _err(kind)

    with pytest.raises(ProviderError) as info:
        asyncio.run(call_with_retries(fn, FAST, 5.0))
    assert info.value.error_type == kind and count == calls


def test_retry_never_sleeps_past_the_budget() -> None:
    policy = RetryPolicy(max_retries=5, base_delay_s=1.0, max_delay_s=1.0)
    count = 0

    async def fn(attempt: int, remaining: float) -> str:
        nonlocal count
        count += 1
        raise ProviderError("x", error_type="rate_limited")

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ProviderError):
            await call_with_retries(fn, policy, 0.05)
        return loop.time() - start

    # full jitter may draw a short wait; the budget still bounds the total
    assert asyncio.run(main()) < 0.5
    assert count <= 5


def test_retry_after_is_honoured() -> None:
    errors = [UpstreamError("x", "rate_limited", 429, upstream_status=429, retry_after=0.15)]

    async def fn(attempt: int, remaining: float) -> str:
        if errors:
            raise errors.pop()
        return "ok"

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await call_with_retries(fn, FAST, 5.0) == "ok"
        return loop.time() - start

    assert asyncio.run(main()) >= 0.14


# -- against a fake upstream -------------------------------------------------------------------
def test_429_then_success_via_retry_over_the_wire() -> None:
    async def main() -> tuple[ChatResponse, int, list[int]]:
        async with FakeUpstream(["429", "500"]) as fake:
            provider = OpenAIProvider(fake.openai_url)
            llm = LLMConfig(provider="openai", model="gpt-4o-mini", base_url=fake.openai_url)
            breaker = BreakerRegistry().for_llm(llm)
            attempts: list[int] = []

            async def attempt(n: int, remaining: float) -> ChatResponse:
                attempts.append(n)
                call = replace(_req(), attempt=n)
                return await breaker.call(lambda: provider.complete(call, llm, remaining))

            try:
                resp = await call_with_retries(attempt, FAST, 5.0)
            finally:
                await provider.aclose()
            return resp, len(fake.seen), attempts

    resp, requests, attempts = asyncio.run(main())
    assert resp.content == "echo: hi" and requests == 3 and attempts == [0, 1, 2]


def test_breaker_opens_on_upstream_500s_and_half_opens() -> None:
    clock = Clock()

    async def main() -> None:
        async with FakeUpstream(["500", "500", "500", "500"]) as fake:
            provider = OpenAIProvider(fake.openai_url)
            llm = LLMConfig(provider="openai", model="gpt-4o-mini", base_url=fake.openai_url)
            breaker = BreakerRegistry(failure_threshold=3, reset_timeout_s=30, clock=clock).for_llm(
                llm
            )

            async def call() -> ChatResponse:
                return await breaker.call(lambda: provider.complete(_req(), llm, 5.0))

            try:
                for _ in range(3):
                    with pytest.raises(ProviderError):
                        await call()
                assert breaker.state is BreakerState.OPEN
                with pytest.raises(CircuitOpenError):
                    await call()
                assert len(fake.seen) == 3  # failing fast: the upstream was not called
                clock.now = 30.0
                assert breaker.state is BreakerState.HALF_OPEN
                with pytest.raises(ProviderError) as info:
                    await call()  # trial call hits the 4th scripted 500
                assert info.value.error_type == "upstream_5xx"
                assert breaker.state is BreakerState.OPEN
                clock.now = 60.0
                assert (await call()).content == "echo: hi"
                assert breaker.state is BreakerState.CLOSED
                assert len(fake.seen) == 5
            finally:
                await provider.aclose()

    asyncio.run(main())


def test_stream_retry_before_first_chunk_and_breaker_guard() -> None:
    async def main() -> tuple[str, int, BreakerState]:
        async with FakeUpstream(["500"]) as fake:
            provider = OpenAIProvider(fake.openai_url)
            llm = LLMConfig(provider="openai", model="gpt-4o-mini", base_url=fake.openai_url)
            breaker = BreakerRegistry(failure_threshold=1, reset_timeout_s=0).for_llm(llm)

            async def open_stream(n: int, remaining: float) -> AsyncIterator[StreamChunk]:
                call = replace(_req(), attempt=n, stream=True)
                return await start_stream(
                    breaker.guard_stream(provider.stream(call, llm, remaining))
                )

            try:
                chunks = await call_with_retries(open_stream, FAST, 5.0)
                text = "".join([chunk_text(c) async for c in chunks])
            finally:
                await provider.aclose()
            return text, len(fake.seen), breaker.state

    text, requests, state = asyncio.run(main())
    assert text == "echo: hi" and requests == 2 and state is BreakerState.CLOSED


def test_mid_stream_failure_counts_against_the_breaker() -> None:
    async def main() -> tuple[list[Any], BreakerState]:
        async with FakeUpstream(["drop"]) as fake:
            provider = OpenAIProvider(fake.openai_url)
            llm = LLMConfig(provider="openai", model="gpt-4o-mini", base_url=fake.openai_url)
            breaker = CircuitBreaker("x", failure_threshold=1, reset_timeout_s=60)
            got: list[Any] = []
            try:
                stream = await start_stream(
                    breaker.guard_stream(provider.stream(replace(_req(), stream=True), llm, 5.0))
                )
                with pytest.raises(ProviderError) as info:
                    async for c in stream:
                        got.append(c)
                assert info.value.error_type == "connection"
            finally:
                await provider.aclose()
            return got, breaker.state

    got, state = asyncio.run(main())
    assert got and state is BreakerState.OPEN


def test_start_stream_raises_for_an_empty_stream() -> None:
    async def empty() -> AsyncIterator[StreamChunk]:
        for c in ():
            yield c

    with pytest.raises(ProviderError) as info:
        asyncio.run(start_stream(empty()))
    assert info.value.error_type == "bad_response"


def test_only_upstream_health_failures_count() -> None:
    from abllm.providers._http import status_error
    from abllm.providers.resilience import counts_as_failure

    def err(status: int) -> ProviderError:
        return status_error("openai", "m", status, b"{}", {}, None)

    assert [counts_as_failure(err(s)) for s in (400, 404, 413, 422)] == [False] * 4
    assert [counts_as_failure(err(s)) for s in (408, 429, 500, 503)] == [True] * 4
    assert err(408).error_type == "timeout"
    assert not counts_as_failure(ProviderError("malformed", error_type="bad_response"))
    assert not counts_as_failure(KeyError("a provider bug"))
    assert counts_as_failure(ConnectionResetError())


def test_arms_get_their_own_breakers() -> None:
    reg = BreakerRegistry(failure_threshold=1)
    llm = LLMConfig(provider="openai", model="gpt-4o", base_url="http://a/v1")
    treatment = reg.for_arm(llm, "exp", "treatment")
    control = reg.for_arm(llm, "exp", "control")
    assert treatment is not control and treatment.name == "exp/treatment:openai@http://a/v1/gpt-4o"
    treatment.record_failure(ProviderError("down", error_type="upstream_5xx"))
    assert treatment.state == "open" and control.state == "closed"
