"""Per-key rate limits: a token bucket per key name (``abllm serve --rate-limit N``).

Each key may make ``rate`` requests a second on average, with bursts up to ``burst`` (default
``rate``); past it the answer is 429 ``rate_limited`` with ``Retry-After`` (whole seconds until
a token is back). The buckets live in this process: with several workers or hosts each one
limits on its own, so the effective limit is ``rate`` times the number of processes. Called on
the event loop only, so no lock is needed; a bucket costs two floats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from abllm.errors import ValidationError


class RateLimiter:
    """Token buckets keyed by key name."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValidationError(f"--rate-limit {rate}: must be above 0 requests per second")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, name: str) -> float:
        """0 when ``name`` may make a request now, else the seconds until it may."""
        now = self._clock()
        tokens, last = self._buckets.get(name, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[name] = (tokens - 1, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (1 - tokens) / self.rate


def retry_after(wait_s: float) -> str:
    """The ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
