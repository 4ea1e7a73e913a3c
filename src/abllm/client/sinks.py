"""Where the SDK's events go: an in-process pipeline into a store, or batches to a server.

Both sinks take events without blocking the application (``emit`` only appends to memory) and
never raise into it: measurement must not break the feature being measured (DESIGN.md "fail
safe"). What cannot be kept (a full buffer) is dropped and counted in ``dropped``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from abllm.client.http import Unreachable, request
from abllm.errors import AbllmError
from abllm.events import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Event, EventPipeline, EventStore

log = logging.getLogger("abllm.client")

EVENTS_PATH = "/v1/events"
#: The longest ``Retry-After`` obeyed; a larger value is read as this (a bad header must not
#: park the sender for hours while the buffer fills).
MAX_RETRY_AFTER_S = 300.0


def _log_dropped(count: int, why: str) -> None:
    """Warn on the 1st, 100th, 10,000th and every 100,000th drop: visible, never a flood."""
    if count in (1, 100, 10_000) or count % 100_000 == 0:
        log.warning("abllm event dropped (%s): %d dropped so far", why, count)


class Sink(Protocol):
    """What the client sends events to."""

    dropped: int

    def emit(self, event: Event) -> None:
        """Take one event without blocking; never raises (drops and counts instead)."""
        ...

    def flush(self, timeout: float | None) -> bool:
        """Deliver everything emitted before the call; False when ``timeout`` ran out first."""
        ...

    def close(self, timeout: float | None) -> None:
        """Flush, then release threads and connections."""
        ...


class LocalSink:
    """Events into an :class:`EventPipeline` in this process (durable: store or spool)."""

    def __init__(self, store: EventStore, spool_dir: str | os.PathLike[str]) -> None:
        self.store = store
        self.pipeline = EventPipeline(store, spool_dir=spool_dir, flush_interval_s=0.25)
        self.dropped = 0

    def emit(self, event: Event) -> None:
        """Buffer the event in the pipeline."""
        try:
            self.pipeline.emit(event)
        except AbllmError as exc:  # Backpressure (spool full) or an event over the size limit
            self.dropped += 1
            _log_dropped(self.dropped, exc.message)

    def flush(self, timeout: float | None) -> bool:
        """Wait until the pipeline made everything durable."""
        try:
            self.pipeline.flush(timeout)
        except TimeoutError:
            return False
        return True

    def close(self, timeout: float | None) -> None:
        """Close the pipeline, then the store (this sink opened it)."""
        try:
            self.pipeline.close(timeout)
        finally:
            self.store.close()


@dataclass(frozen=True)
class SenderSettings:
    """Batching and retry knobs of :class:`HttpSender`."""

    batch_size: int = 500
    flush_interval_s: float = 1.0
    max_buffer: int = 50_000
    timeout_s: float = 10.0
    min_backoff_s: float = 0.1
    max_backoff_s: float = 30.0


class HttpSender:
    """Events to ``POST {server_url}/v1/events`` from a background thread.

    A batch goes out when ``batch_size`` events are waiting or ``flush_interval_s`` after the
    first one came in. A failed batch is retried, unchanged (its ``event_id`` values make the
    retry idempotent), with exponential backoff, or after ``Retry-After`` when the server says
    429/503. Memory is bounded: beyond ``max_buffer`` waiting events new ones are dropped and
    counted. A 4xx other than 408/429 means the batch itself is refused; it is dropped, logged.
    """

    def __init__(
        self, server_url: str, headers: dict[str, str], settings: SenderSettings | None = None
    ) -> None:
        self.url = server_url + EVENTS_PATH
        self.headers = {**headers, "Content-Type": "application/json"}
        self.settings = settings or SenderSettings()
        self.batch_size = max(1, min(self.settings.batch_size, MAX_BATCH_EVENTS))
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._seq_in = 0  # events ever accepted
        self._seq_out = 0  # events delivered or given up on
        self._urgent = 0  # flush() callers waiting
        self._closing = False
        self._first_at: float | None = None
        self.dropped = 0
        self.sent = 0
        self.refused = 0
        self.retries = 0
        self._thread = threading.Thread(target=self._run, name="abllm-client-events", daemon=True)
        self._thread.start()

    # -- producers ----------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Queue one event (dropped and counted when the buffer is full or the sender closed)."""
        with self._cond:
            if self._closing or len(self._queue) >= self.settings.max_buffer:
                self.dropped += 1
                _log_dropped(self.dropped, f"buffer full (max_buffer {self.settings.max_buffer})")
                return
            self._queue.append(event)
            self._seq_in += 1
            if self._first_at is None:
                self._first_at = time.monotonic()
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None) -> bool:
        """Wait until every event queued before the call is delivered (or given up on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._seq_in
            self._urgent += 1
            self._cond.notify_all()
            try:
                while self._seq_out < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))
                return True
            finally:
                self._urgent -= 1

    def close(self, timeout: float | None) -> None:
        """Deliver what is buffered (within ``timeout``), then stop the thread."""
        delivered = self.flush(timeout)
        with self._cond:
            self._closing = True
            lost = len(self._queue)
            self._cond.notify_all()
        self._thread.join(5.0)
        if not delivered and lost:
            log.warning("abllm client closed with %d events not delivered to %s", lost, self.url)

    # -- the sender thread --------------------------------------------------------------------
    def _take(self) -> list[Event] | None:
        """Wait until a batch is due; None once closing with nothing left."""
        with self._cond:
            while True:
                if not self._queue:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                due = (self._first_at or 0.0) + self.settings.flush_interval_s
                now = time.monotonic()
                if (
                    self._closing
                    or self._urgent
                    or len(self._queue) >= self.batch_size
                    or now >= due
                ):
                    return list(itertools.islice(self._queue, self.batch_size))
                self._cond.wait(due - now)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            parts = [event.__pydantic_serializer__.to_json(event) for event in batch]
            while sum(map(len, parts)) + len(parts) + 1 > MAX_BATCH_BYTES and len(parts) > 1:
                parts = parts[: len(parts) // 2]  # keep each request under the server's 1 MB
            delivered = self._deliver(b"[" + b",".join(parts) + b"]", len(parts))
            with self._cond:
                for _ in range(len(parts)):
                    self._queue.popleft()
                self._seq_out += len(parts)
                if delivered:
                    self.sent += len(parts)
                else:
                    self.refused += len(parts)
                self._first_at = time.monotonic() if self._queue else None
                self._cond.notify_all()

    def _deliver(self, body: bytes, count: int) -> bool:
        """POST one batch until it is acknowledged; False when the server refuses it outright.

        Retries are unbounded while the client is open (memory stays bounded by ``max_buffer``);
        once closing, they stop when no ``flush``/``close`` caller is waiting any longer.
        """
        backoff = self.settings.min_backoff_s
        while True:
            wait: float | None
            try:
                answer = request(
                    "POST",
                    self.url,
                    body=body,
                    headers=self.headers,
                    timeout_s=self.settings.timeout_s,
                )
            except Unreachable as exc:
                log.debug("abllm events: %s", exc)
                wait = None
            else:
                if answer.ok:
                    return True
                if answer.status not in (408, 429) and 400 <= answer.status < 500:
                    log.error(
                        "abllm server refused %d events (HTTP %d): %s",
                        count,
                        answer.status,
                        answer.body[:500].decode(errors="replace"),
                    )
                    return False
                # 429/503 say when (honoured as given, up to MAX_RETRY_AFTER_S); others back off
                wait = (
                    None
                    if answer.retry_after is None
                    else min(answer.retry_after, MAX_RETRY_AFTER_S)
                )
            if wait is None:  # full jitter keeps many clients from retrying in step
                wait = random.uniform(backoff / 2, backoff)
                backoff = min(backoff * 2, self.settings.max_backoff_s)
            self.retries += 1
            until = time.monotonic() + wait
            with self._cond:
                while True:
                    if self._closing and not self._urgent:
                        return False  # close() gave up waiting: stop retrying
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
