"""Retries with jittered backoff and a circuit breaker per provider, base URL and model.

Retries use tenacity with "full jitter" exponential backoff (a uniform wait in
[0, min(max_delay, base·2^n)], Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog
2015) on 429, 5xx and connection failures, honour ``Retry-After``, and never sleep past the
request's timeout budget (``stop_before_delay``).

The breaker is written here rather than taken from pybreaker because pybreaker's state machine
is synchronous and thread-locked (its async support relies on Tornado coroutines): on an asyncio
hot path we want a lock-free object whose transitions happen between awaits, a half-open state
that admits a bounded number of trial calls, and a hook for streams, whose success is only known
at the last chunk.

Usage (what the gateway does)::

    breaker = breakers.for_llm(llm)
    async def attempt(n: int, remaining_s: float) -> ChatResponse:
        call = replace(req, attempt=n)
        return await breaker.call(lambda: provider.complete(call, llm, remaining_s))
    resp = await call_with_retries(attempt, RetryPolicy(max_retries=2), budget_s=30.0)

    # streams: errors before the first chunk are raised by start_stream, so they can be retried
    async def open_stream(n: int, remaining_s: float) -> AsyncIterator[StreamChunk]:
        call = replace(req, attempt=n)
        return await start_stream(breaker.guard_stream(provider.stream(call, llm, remaining_s)))
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from abllm.config.llm import LLMConfig
from abllm.errors import ProviderError
from abllm.providers.base import StreamChunk

T = TypeVar("T")

#: error types worth another attempt: the upstream may answer next time.
RETRYABLE = frozenset({"rate_limited", "upstream_5xx", "connection"})
#: error types that count against an upstream's health: 5xx, timeouts (408 included), resets
#: and 429 (shedding load from a rate-limited upstream is what the breaker is for). A 4xx or a
#: malformed answer can be caused by the request itself (``max_tokens: 0`` gets an empty answer
#: from some servers), so it never counts: one caller must not open the breaker for everyone.
BREAKER_FAILURES = frozenset({"timeout", "rate_limited", "upstream_5xx", "connection"})


class CircuitOpenError(ProviderError):
    """The breaker for this upstream is open: the call was not attempted."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        super().__init__(
            f"circuit breaker {name} is open; next trial call in {retry_in_s:.1f} s",
            error_type="circuit_open",
            status=503,
        )
        self.retry_in_s = retry_in_s


class BreakerState(StrEnum):
    """closed: calls flow; open: calls fail fast; half_open: a few trial calls probe recovery."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def counts_as_failure(exc: BaseException) -> bool:
    """Whether an exception says the upstream is unhealthy (see :data:`BREAKER_FAILURES`)."""
    if isinstance(exc, CircuitOpenError):
        return False
    if isinstance(exc, ProviderError):
        return exc.error_type in BREAKER_FAILURES
    # Outside a ProviderError only transport failures say something about the upstream; any
    # other exception is a bug on this side.
    return isinstance(exc, OSError | TimeoutError)


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``reset_timeout_s`` it turns
    half-open and lets ``half_open_max_calls`` trial calls through: a success closes it, a
    failure opens it again for another ``reset_timeout_s``.

    >>> now = [0.0]
    >>> b = CircuitBreaker("openai/gpt-4o", failure_threshold=2, reset_timeout_s=10,
    ...                    clock=lambda: now[0])
    >>> b.record_failure(); b.record_failure(); b.state
    <BreakerState.OPEN: 'open'>
    >>> now[0] = 10.0; b.state
    <BreakerState.HALF_OPEN: 'half_open'>
    >>> b.before_call(); b.record_success(); b.state
    <BreakerState.CLOSED: 'closed'>
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or reset_timeout_s < 0:
            raise ValueError(
                "failure_threshold and half_open_max_calls must be >= 1, reset_timeout_s >= 0"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trials = 0
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpenError`; pair with a ``record_*`` call."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and self._trials < self.half_open_max_calls:
            self._trials += 1
            return
        assert self._opened_at is not None
        retry_in = max(0.0, self._opened_at + self.reset_timeout_s - self._clock())
        raise CircuitOpenError(self.name, retry_in)

    def record_success(self) -> None:
        """The upstream answered: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._trials = 0

    def record_failure(self, exc: BaseException | None = None) -> None:
        """Count a failure (ignored when ``exc`` is the caller's fault, such as a 4xx)."""
        if exc is not None and not counts_as_failure(exc):
            if not isinstance(exc, CircuitOpenError):
                self.record_success()  # the upstream answered, so it is alive
            return
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            if self._opened_at is None or self.state is BreakerState.HALF_OPEN:
                self.opened_count += 1
            self._opened_at = self._clock()
            self._trials = 0

    def release(self) -> None:
        """Give back a half-open trial slot for a call that ended undecided (cancelled)."""
        self._trials = max(0, self._trials - 1)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` through the breaker."""
        self.before_call()
        try:
            result = await fn()
        except Exception as exc:
            self.record_failure(exc)
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()
        return result

    async def guard_stream(self, chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[StreamChunk]:
        """Pass a stream through the breaker: success at its end, failure on any error."""
        self.before_call()
        finished = False
        try:
            async for chunk in chunks:
                yield chunk
            finished = True
        except Exception as exc:
            self.record_failure(exc)
            raise
        finally:
            if finished:
                self.record_success()
            elif self._trials:
                self.release()
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()


class BreakerRegistry:
    """One :class:`CircuitBreaker` per upstream model, created on first use.

    :meth:`for_llm` keys by (provider, base_url, model); :meth:`for_arm` adds the experiment
    arm, so a treatment whose own config makes the control's model fail (a prompt that times
    out, a parameter that gets 5xx) opens only its own breaker and the control keeps answering.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = (failure_threshold, reset_timeout_s, half_open_max_calls)
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(
        self, provider: str, model: str, base_url: str | None = None, arm: str | None = None
    ) -> CircuitBreaker:
        """The breaker for one upstream model; its name is ``[arm:]provider[@base_url]/model``."""
        name = f"{provider}@{base_url}/{model}" if base_url else f"{provider}/{model}"
        if arm:
            name = f"{arm}:{name}"
        breaker = self._breakers.get(name)
        if breaker is None:
            threshold, reset, trials = self._settings
            breaker = CircuitBreaker(
                name,
                failure_threshold=threshold,
                reset_timeout_s=reset,
                half_open_max_calls=trials,
                clock=self._clock,
            )
            self._breakers[name] = breaker
        return breaker

    def for_llm(self, llm: LLMConfig) -> CircuitBreaker:
        """The breaker for an ``llm`` block, shared by everyone calling that model."""
        return self.get(llm.provider, llm.model, None if llm.provider == "sim" else llm.base_url)

    def for_arm(self, llm: LLMConfig, experiment_id: str, variant_id: str) -> CircuitBreaker:
        """The breaker of one experiment arm's ``llm`` block (``experiment/variant:...``)."""
        base_url = None if llm.provider == "sim" else llm.base_url
        return self.get(llm.provider, llm.model, base_url, f"{experiment_id}/{variant_id}")

    def states(self) -> dict[str, str]:
        """Breaker name -> state, for metrics and the admin API."""
        return {name: b.state.value for name, b in self._breakers.items()}


@dataclass(frozen=True)
class RetryPolicy:
    """How many retries, how long to back off, and on which error types."""

    max_retries: int = 2
    base_delay_s: float = 0.1
    max_delay_s: float = 2.0
    retry_on: frozenset[str] = RETRYABLE


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    jitter = wait_random_exponential(multiplier=policy.base_delay_s, max=policy.max_delay_s)

    def wait(state: RetryCallState) -> float:
        delay = jitter(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            delay = max(delay, float(retry_after))
        return delay

    return wait


async def call_with_retries(
    fn: Callable[[int, float], Awaitable[T]],
    policy: RetryPolicy,
    budget_s: float,
    *,
    on_retry: Callable[[int, ProviderError], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn(attempt, remaining_s)`` until it succeeds, retrying retryable ProviderErrors.

    ``attempt`` counts from 0; ``remaining_s`` is what is left of ``budget_s`` and is the timeout
    to pass on. The last error is re-raised; ``on_retry(attempt, error)`` runs before each wait.
    """
    deadline = clock() + budget_s
    attempts = 0

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, ProviderError) and exc.error_type in policy.retry_on

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and isinstance(exc, ProviderError):
            on_retry(state.attempt_number, exc)

    async def one() -> T:
        nonlocal attempts
        remaining = deadline - clock()
        if remaining <= 0:
            raise ProviderError(
                f"timeout budget of {budget_s:g} s spent after {attempts} attempt(s)",
                error_type="timeout",
                status=504,
            )
        attempt, attempts = attempts, attempts + 1
        return await fn(attempt, remaining)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_retries + 1) | stop_before_delay(budget_s),
        wait=_wait(policy),
        retry=retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(one)


async def start_stream(chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[StreamChunk]:
    """Fetch the first chunk now, so a failure before it raises here (to retry or fall back).

    Returns an iterator that yields that chunk and then the rest.
    """
    iterator = aiter(chunks)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        raise ProviderError(
            "the upstream stream ended before its first chunk", error_type="bad_response"
        ) from None

    async def replay() -> AsyncIterator[StreamChunk]:
        try:
            yield first
            async for chunk in iterator:
                yield chunk
        finally:
            if isinstance(iterator, AsyncGenerator):
                await iterator.aclose()

    return replay()
