"""One writer thread per store, fed by a queue, with group commit.

Every write to a store goes through this thread (datasette's ``execute_write_fn`` pattern): the
embedded engines allow one writer, and a single owner of the write connection removes lock
contention. Batches that queue up while a commit is in flight are written in the next single
transaction (group commit), so many small concurrent batches cost one fsync, while each caller
still learns how many of *its* rows were new.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from abllm.errors import StoreUnavailable

T = TypeVar("T")

#: Write all given batches in one transaction; return rows newly stored per batch.
GroupWrite = Callable[[Sequence[T]], list[int]]

_STOP = object()


class SingleWriter(Generic[T]):
    """Serialises writes: ``write(batch)`` blocks until the batch is committed.

    ``max_group`` caps how many queued batches share one transaction.
    """

    def __init__(self, name: str, group_write: GroupWrite[T], max_group: int = 64) -> None:
        self._group_write = group_write
        self._max_group = max_group
        self._queue: queue.SimpleQueue[tuple[T, Future[int]] | object] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"abllm-writer-{name}", daemon=True)
        self._thread.start()

    def submit(self, batch: T) -> Future[int]:
        """Queue ``batch``; the future resolves to its new-row count once committed."""
        future: Future[int] = Future()
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the event store is closed")
            self._queue.put((batch, future))
        return future

    def write(self, batch: T) -> int:
        """Queue ``batch`` and wait for its commit."""
        return self.submit(batch).result()

    def close(self) -> None:
        """Finish queued writes, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                group.append(item)
            self._commit(group)  # type: ignore[arg-type]

    def _commit(self, group: list[tuple[T, Future[int]]]) -> None:
        try:
            counts = self._group_write([batch for batch, _ in group])
        except BaseException as exc:  # every waiter must hear about the failure
            for _, future in group:
                future.set_exception(exc)
            return
        for (_, future), count in zip(group, counts, strict=True):
            future.set_result(count)
