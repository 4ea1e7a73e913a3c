"""Glue between the gateway and ``abllm.providers``' retry policy and circuit breakers.

The retry loop itself is the providers package's tenacity-based ``call_with_retries`` (full
jitter, ``Retry-After``, budget-aware). The gateway runs the *first* attempt outside it, because
building tenacity's retry state costs ≈ 27 µs a call here — about 8 % of the hot path's budget at
3,000 requests/s — and most calls succeed the first time; only a retryable failure pays for it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from abllm.errors import ProviderError
from abllm.providers import RetryPolicy, call_with_retries

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ResilienceSettings:
    """Breaker and backoff knobs (the experiment sets ``max_retries`` and the time budget)."""

    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0

    def policy(self, max_retries: int) -> RetryPolicy:
        """The retry policy for an experiment's ``max_retries``."""
        return RetryPolicy(
            max_retries=max_retries,
            base_delay_s=self.backoff_base_s,
            max_delay_s=self.backoff_max_s,
        )


@dataclass(slots=True)
class Attempts:
    """How many attempts a call took."""

    count: int = 0


async def retry_after(
    first: ProviderError,
    fn: Callable[[int, float], Awaitable[T]],
    policy: RetryPolicy,
    deadline: float,
    attempts: Attempts,
) -> T:
    """Retry ``fn(attempt, remaining_s)`` after its first attempt failed with ``first``.

    Waits as tenacity would before a second attempt (``U(0, base)``, at least ``Retry-After``),
    then hands attempts 1..max_retries to the providers' ``call_with_retries``; ``deadline`` is a
    ``time.monotonic()`` instant. Re-raises ``first`` when no retry fits in the budget.
    """

    async def counted(n: int, remaining_s: float) -> T:
        attempts.count += 1
        return await fn(n + 1, remaining_s)

    delay = random.uniform(0.0, min(policy.max_delay_s, policy.base_delay_s))
    retry_after_s = getattr(first, "retry_after", None)
    if isinstance(retry_after_s, int | float):
        delay = max(delay, float(retry_after_s))
    if time.monotonic() + delay >= deadline:
        raise first
    await asyncio.sleep(delay)
    rest = replace(policy, max_retries=policy.max_retries - 1)
    return await call_with_retries(counted, rest, deadline - time.monotonic())


async def with_retries(
    fn: Callable[[int, float], Awaitable[T]],
    policy: RetryPolicy,
    deadline: float,
    attempts: Attempts,
) -> T:
    """``fn(attempt, remaining_s)`` with retries on retryable errors until ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ProviderError("the timeout budget was spent before the call", "timeout", 504)
    attempts.count += 1
    try:
        return await fn(0, remaining)
    except ProviderError as exc:
        if exc.error_type not in policy.retry_on or policy.max_retries < 1:
            raise
        first = exc
    return await retry_after(first, fn, policy, deadline, attempts)
