"""Glue between the gateway and ``abllm.providers``' retry policy and circuit breakers.

The retry loop itself is the providers package's tenacity-based ``call_with_retries`` (full
jitter, ``Retry-After``, budget-aware). The gateway runs the *first* attempt outside it, because
building tenacity's retry state costs ≈ 27 µs a call here — about 8 % of the hot path's budget at
3,000 requests/s — and most calls succeed the first time; only a retryable failure pays for it.

:func:`guarded` is the one attempt driver of the complete and the stream paths (breaker, error
mapping, redaction of upstream error text); :class:`Deadlines` holds a request to its budget.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from abllm.config import LLMConfig
from abllm.errors import ProviderError
from abllm.providers import CircuitBreaker, RetryPolicy, call_with_retries
from abllm.telemetry.redact import redact_async

T = TypeVar("T")
log = logging.getLogger("abllm.gateway")

#: Upstream error text kept in events, logs and answers: redacted first, then cut to this.
ERROR_CHARS = 500


async def clean_error(exc: ProviderError) -> ProviderError:
    """Redact ``exc``'s message in place, then cut it (redacting after a cut could leave half a
    card number that no pattern recognises any more)."""
    text = (await redact_async(exc.message))[:ERROR_CHARS]
    exc.message = text
    exc.args = (text,)
    return exc


class Deadlines:
    """Holds whole requests (every attempt, backoff and the fallback) to their deadline.

    Each attempt already gets the remaining time as its own timeout; this is the backstop for
    what those cannot see (a provider that ignores its timeout, a loop too busy to wake a timer
    on time, a connection-pool queue): a request past its deadline is cancelled and ends with
    ``timeout`` (504), at most ``tick_s`` late. One timer ticks for all requests, because an
    ``asyncio.timeout`` per request measured 12-20 µs here (a timer-heap push, and a cancelled
    entry left in the heap each time) against ≈ 4 µs for registering in a dict.

    Usage: ``async with deadlines.hold(deadline, budget_s): ...`` (``time.monotonic()`` time).
    """

    def __init__(self, tick_s: float = 0.02) -> None:
        self.tick_s = tick_s
        self._held: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def hold(self, deadline: float, budget_s: float) -> Hold:
        """A context manager that holds the current task to ``deadline``."""
        return Hold(self, deadline, budget_s)

    def _add(self, task: asyncio.Task[Any], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): forget the old one's timer
            self._held.clear()
            self._expired.clear()
            self._handle, self._loop = None, loop
        self._held[task] = deadline
        if self._handle is None:
            self._handle = loop.call_later(self.tick_s, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        for task, deadline in self._held.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        loop = self._loop
        self._handle = loop.call_later(self.tick_s, self._tick) if self._held and loop else None


class Hold:
    """One request held by :class:`Deadlines` (see there)."""

    __slots__ = ("_budget_s", "_deadline", "_deadlines", "_task")

    def __init__(self, deadlines: Deadlines, deadline: float, budget_s: float) -> None:
        self._deadlines = deadlines
        self._deadline = deadline
        self._budget_s = budget_s
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._deadlines._add(task, self._deadline)

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> None:
        task, deadlines = self._task, self._deadlines
        assert task is not None
        deadlines._held.pop(task, None)
        if task not in deadlines._expired:
            return
        deadlines._expired.discard(task)
        # As asyncio.Timeout does: the cancellation was ours unless someone else's is pending.
        if task.uncancel() == 0 and kind is asyncio.CancelledError:
            raise ProviderError(
                f"the request's time budget of {self._budget_s:g} s ran out", "timeout", 504
            ) from None


async def guarded(
    breaker: CircuitBreaker,
    llm: LLMConfig,
    timeout_s: float,
    op: Callable[[], Awaitable[T]],
    *,
    settle: bool = True,
) -> T:
    """One provider attempt through ``breaker``: the one place that maps what a provider raises.

    A ``ProviderError`` is recorded (the breaker decides whether it says anything about the
    upstream's health) and re-raised with its message cleaned; a bare ``TimeoutError`` becomes
    ``timeout``; any other exception is a provider bug, answered as ``bad_response`` (never a
    500) and not held against the upstream. ``settle=False`` (streams) leaves the success to
    be recorded when the stream ends.
    """
    breaker.before_call()
    try:
        result = await op()
    except ProviderError as exc:
        breaker.record_failure(exc)
        raise await clean_error(exc) from None
    except TimeoutError:
        err = ProviderError(
            f"{llm.provider} model {llm.model} timed out after {timeout_s:.3g} s",
            error_type="timeout",
            status=504,
        )
        breaker.record_failure(err)
        raise err from None
    except Exception as exc:
        log.exception("provider %s raised a non-ProviderError", llm.provider)
        breaker.release()
        raise ProviderError(
            f"{llm.provider} call failed: {type(exc).__name__}", error_type="bad_response"
        ) from exc
    except BaseException:
        breaker.release()
        raise
    if settle:
        breaker.record_success()
    return result


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
