"""The ingestion pipeline: buffer, flush by size and time, acknowledge only when durable.

``emit`` is the gateway's hot path: it appends to an in-memory buffer and returns. ``submit`` and
``submit_sync`` return once their events are durable: committed to the store, fsynced to the
spool, or (refused by the store for their data) fsynced to the dead-letter file. A flusher thread
moves the buffer to the store in batches of up to ``max_batch`` events; once a write fails with
``StoreUnavailable`` (an outage, or a store timeout such as a frozen server) it writes batches to
the spool instead. A replayer thread moves the spool to the store oldest first, retrying every
``retry_interval_s``; its first success marks the store available again and new events go
straight to the store while it drains the rest (duplicates are ignored by ``event_id``), so
ingestion does not slow down while a backlog replays.

Any other write failure is the data's fault (:mod:`abllm.events.delivery`): the events the store
refuses go to the dead-letter file and the rest flow on. Memory is bounded by ``max_buffer`` events
and disk by ``spool_limit_bytes``; beyond either, callers get ``Backpressure`` (``retry_after``).

``emit`` acknowledges nothing: its buffered events are best-effort on SIGKILL (docs/events.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path

from abllm.errors import AbllmError, Backpressure, LimitExceeded, StoreUnavailable
from abllm.events.deadletter import DeadLetters
from abllm.events.delivery import Delivery
from abllm.events.models import Event, check_batch
from abllm.events.spool import Spool, SpoolRecord
from abllm.events.store import EventStore

log = logging.getLogger("abllm.events")

DEFAULT_SPOOL_DIR = "./abllm-data/spool"


@dataclass(frozen=True)
class PipelineStats:
    """Counters since start (events) and current gauges, e.g. for Prometheus."""

    queued: int  # accepted by emit/submit
    stored: int  # written straight to the store
    spooled: int  # written to the spool because the store failed
    replayed: int  # moved from the spool to the store
    rejected: int  # refused: invalid, over a limit, or back-pressure
    dead_lettered: int  # refused by the store for their data, kept in the dead-letter file
    buffered: int  # gauge: waiting in memory
    spool_bytes: int  # gauge: waiting on disk
    spool_limit_bytes: int
    spool_full: bool  # the last spool append was refused for lack of room
    replay_lag_s: float  # gauge: age of the oldest spooled batch still waiting (0 when none)
    dead_letters: int  # gauge: lines in the dead-letter file, earlier runs included
    store_errors: int  # failed store writes
    store_available: bool


@dataclass(eq=False)  # identity, not a comparison of event lists
class _Pending:
    events: list[Event]
    future: Future[None] | None


class EventPipeline:
    """Durable, deduplicated ingestion into an ``EventStore``::

        pipeline = EventPipeline(open_store(None), spool_dir="./abllm-data/spool")
        pipeline.emit(event)                # hot path, never blocks on I/O
        await pipeline.submit([event])      # returns once durable
        pipeline.close()

    The pipeline does not close the store it was given.
    """

    def __init__(
        self,
        store: EventStore,
        spool_dir: str | os.PathLike[str] = DEFAULT_SPOOL_DIR,
        max_batch: int = 1000,
        flush_interval_s: float = 0.05,
        spool_limit_bytes: int = 256 * 1024 * 1024,
        max_buffer: int = 100_000,
        retry_interval_s: float = 0.5,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.retry_interval_s = retry_interval_s
        self.spool = Spool(Path(spool_dir), limit_bytes=spool_limit_bytes)
        self.dead_letters = DeadLetters(Path(spool_dir))
        self._delivery = Delivery(store, self.dead_letters)
        self._cond = threading.Condition()
        self._pending: deque[_Pending] = deque()
        self._buffered = 0
        self._seq_in = 0  # events ever enqueued
        self._seq_out = 0  # events made durable, or refused to their submitter
        self._waiters = 0  # pending entries someone waits on: flush them without delay
        self._in_flight = 0
        self._closing = False
        self._store_ok = True
        self._next_retry = 0.0
        self._counts = {
            "queued": 0,
            "stored": 0,
            "spooled": 0,
            "replayed": 0,
            "rejected": 0,
        }
        self._store_errors = 0
        self._spool_full = False
        self._thread = threading.Thread(target=self._run, name="abllm-events-flusher", daemon=True)
        self._thread.start()
        self._replayer = threading.Thread(
            target=self._replay_loop, name="abllm-events-replayer", daemon=True
        )
        self._replayer.start()

    # -- producers ---------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Buffer one event without waiting for I/O; ``Backpressure`` when the buffer is full.

        The event is screened in the flusher thread (``unstorable_reason``): one the stores
        cannot take goes to the dead-letter file, so the caller's request never fails for it.
        """
        self._enqueue([event], None)

    def submit_sync(self, events: Sequence[Event], timeout: float | None = None) -> None:
        """Return once ``events`` (one batch within the batch limits) are durable."""
        self._enqueue_batch(events).result(timeout)

    async def submit(self, events: Sequence[Event]) -> None:
        """Async ``submit_sync``: awaits durability without blocking the event loop."""
        await asyncio.wrap_future(self._enqueue_batch(events))

    def _enqueue_batch(self, events: Sequence[Event]) -> Future[None]:
        try:
            check_batch(events)
        except LimitExceeded:
            self._count("rejected", len(events))
            raise
        future: Future[None] = Future()
        if not events:
            future.set_result(None)
            return future
        self._enqueue(list(events), future)
        return future

    def _enqueue(self, events: list[Event], future: Future[None] | None) -> None:
        with self._cond:
            if self._closing:
                raise Backpressure("the event pipeline is closed", retry_after=1.0)
            if self._buffered + len(events) > self.max_buffer:
                self._counts["rejected"] += len(events)
                raise Backpressure(
                    f"event buffer is full ({self._buffered} events, max_buffer "
                    f"{self.max_buffer}); retry later",
                    retry_after=max(self.retry_interval_s, self.flush_interval_s),
                )
            tail = self._pending[-1] if self._pending else None
            if (
                future is None
                and tail is not None
                and tail.future is None
                and len(tail.events) < self.max_batch
            ):
                tail.events.extend(events)  # emitted events share one entry: no per-event object
            else:
                self._pending.append(_Pending(events, future))
            self._buffered += len(events)
            self._seq_in += len(events)
            self._counts["queued"] += len(events)
            if future is not None:
                self._waiters += 1
            if future is not None or self._buffered >= self.max_batch:
                self._cond.notify()

    def _count(self, name: str, n: int) -> None:
        with self._cond:
            self._counts[name] += n

    # -- control -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event enqueued before this call is durable (stored or spooled)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._seq_in  # later events do not keep this call waiting
            self._waiters += 1  # wake the flusher without waiting for the interval
            self._cond.notify()
            try:
                while self._seq_out < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("events still buffered after flush timeout")
                    self._cond.wait(remaining if remaining is not None else 0.1)
            finally:
                self._waiters -= 1

    def drain(self, timeout: float = 30.0) -> bool:
        """Flush, then wait until the spool is replayed; True when it is empty."""
        self.flush(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._next_retry = 0.0
            self._cond.notify()
            while not self.spool.is_empty() and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return self.spool.is_empty()

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush what is buffered (to the store or the spool) and stop the flusher."""
        with self._cond:
            if self._closing:
                return
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        self._replayer.join(timeout)
        self.spool.close()

    @property
    def stats(self) -> PipelineStats:
        """A snapshot of the counters."""
        with self._cond:
            return PipelineStats(
                **self._counts,
                dead_lettered=self._delivery.dead_lettered,
                buffered=self._buffered,
                spool_bytes=self.spool.pending_bytes,
                spool_limit_bytes=self.spool.limit_bytes,
                spool_full=self._spool_full,
                replay_lag_s=self.spool.replay_lag_s,
                dead_letters=self.dead_letters.count,
                store_errors=self._store_errors,
                store_available=self._store_ok,
            )

    # -- the flusher thread ------------------------------------------------------------------

    def _take(self) -> list[_Pending] | None:
        """Wait for work; return up to ``max_batch`` events' worth of entries (None: stop)."""
        with self._cond:
            deadline = time.monotonic() + self.flush_interval_s
            while True:
                if self._closing and not self._pending:
                    return None
                urgent = self._waiters > 0 or self._buffered >= self.max_batch or self._closing
                if self._pending and (urgent or time.monotonic() >= deadline):
                    break
                wait = deadline - time.monotonic() if self._pending else self.flush_interval_s
                self._cond.wait(max(wait, 0.001))
            taken: list[_Pending] = []
            size = 0
            while self._pending and (
                not taken or size + len(self._pending[0].events) <= self.max_batch
            ):
                entry = self._pending.popleft()
                taken.append(entry)
                size += len(entry.events)
            self._in_flight = size
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            retry: list[_Pending] = []
            try:
                retry = self._write(taken)
            except Exception as exc:  # never leave a submitter waiting forever
                log.exception("event flush failed")
                error = Backpressure(f"event pipeline error: {exc}", retry_after=1.0)
                _resolve([e for e in taken if e.future is not None], error)
                retry = [e for e in taken if e.future is None]
            finally:
                with self._cond:
                    self._pending.extendleft(reversed(retry))  # emitted events keep their place
                    retried = {id(e) for e in retry}
                    done = sum(len(e.events) for e in taken if id(e) not in retried)
                    self._buffered -= done
                    self._seq_out += done
                    self._in_flight = 0
                    self._waiters -= sum(1 for e in taken if e.future is not None)
                    self._cond.notify_all()

    def _write(self, taken: list[_Pending]) -> list[_Pending]:
        """Store or spool ``taken``; return the emitted entries that must wait for space."""
        events = self._delivery.screen([event for entry in taken for event in entry.events])
        if not events:  # all dead-lettered
            _resolve(taken, None)
            return []
        with self._cond:
            # While the store is down the replayer probes it; the flusher probes only when
            # nothing is spooled (then no replay would ever notice the store is back).
            store_due = self._store_ok or (
                self.spool.is_empty() and time.monotonic() >= self._next_retry
            )
        if store_due:
            try:
                self._delivery.store_all(events)
            except StoreUnavailable as exc:  # keep the events, durably, in the spool
                self._store_failed(exc)
            else:
                with self._cond:
                    self._store_ok = True
                self._count("stored", len(events))
                _resolve(taken, None)
                return []
        try:
            self.spool.append(events)
        except (Backpressure, OSError) as exc:
            self._spool_full = isinstance(exc, Backpressure)
            error = (
                exc
                if isinstance(exc, Backpressure)
                else Backpressure(f"cannot write the event spool: {exc}", retry_after=5.0)
            )
            submitted = [e for e in taken if e.future is not None]
            self._count("rejected", sum(len(e.events) for e in submitted))
            _resolve(submitted, error)  # submitters were never acknowledged: they retry
            emitted = [e for e in taken if e.future is None]
            if self._closing:
                lost = sum(len(e.events) for e in emitted)
                self._count("rejected", lost)
                if lost:
                    log.error("closing: %d emitted events not stored: %s", lost, error.message)
                return []
            return emitted
        self._count("spooled", len(events))
        with self._cond:
            self._spool_full = False
            self._cond.notify_all()  # wake the replayer
        _resolve(taken, None)
        return []

    def _store_failed(self, exc: BaseException) -> None:
        with self._cond:
            self._store_errors += 1
            if self._store_ok:
                log.warning("event store unavailable, spooling: %s", exc)
            self._store_ok = False
            self._next_retry = time.monotonic() + self.retry_interval_s

    # -- the replayer thread -----------------------------------------------------------------

    def _replay_loop(self) -> None:
        """Move spooled batches to the store, oldest first, whenever the store accepts them."""
        while True:
            with self._cond:
                while True:
                    if self._closing:
                        return
                    if not self.spool.is_empty():
                        wait = self._next_retry - time.monotonic()
                        if wait <= 0:
                            break
                    else:
                        wait = 1.0
                    self._cond.wait(min(wait, 1.0))
            live_before = self._seq_in
            started = time.monotonic()
            try:
                self._replay_one()
            except Exception as exc:  # e.g. an unreadable spool: keep serving, retry later
                log.exception("event spool replay failed")
                self._store_failed(exc)
            if self._seq_in != live_before:
                # Live traffic arrived meanwhile: leave the store to it for as long again, so
                # ingestion keeps at least half of the store's time while a backlog drains.
                self._pause(time.monotonic() - started)

    def _pause(self, seconds: float) -> None:
        with self._cond:
            deadline = time.monotonic() + seconds
            while not self._closing and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)

    def _replay_one(self) -> None:
        record: SpoolRecord | None = self.spool.peek()
        if record is None:
            return
        events = self._delivery.screen(record.events)
        try:
            self._delivery.store_all(events)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            return
        if record.invalid:
            self._delivery.set_aside(record.invalid)
        self.spool.mark_replayed(record)
        self._count("replayed", len(record.events))
        with self._cond:
            self._spool_full = False  # room again
            if not self._store_ok:
                log.warning("event store is back; replaying the spool")
            self._store_ok = True
            self._cond.notify_all()


def _resolve(taken: Iterable[_Pending], error: AbllmError | None) -> None:
    for entry in taken:
        if entry.future is not None and not entry.future.done():
            # A caller whose bounded wait ran out cancels its future, maybe just now.
            with contextlib.suppress(InvalidStateError):
                if error is None:
                    entry.future.set_result(None)
                else:
                    entry.future.set_exception(error)
