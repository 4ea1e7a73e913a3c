"""Pipeline: durable acknowledgement, spool during outages, ordered replay, back-pressure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from abllm.errors import Backpressure, LimitExceeded, StoreUnavailable
from abllm.events import Event, EventPipeline, open_store
from abllm.events.embedded import DuckDBStore
from abllm.events.spool import Spool


class FlakyStore:
    """A DuckDB store that can be taken down and that records append order (a test fake)."""

    dialect = "duckdb"
    events_relation = "abllm_events"

    def __init__(self) -> None:
        self.inner = DuckDBStore(":memory:")
        self.down = False
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[list[str]] = []

    def append(self, events: Sequence[Event]) -> int:
        self.gate.wait()
        if self.down:
            raise StoreUnavailable("store is down (test)")
        self.batches.append([e.unit_id for e in events])
        return self.inner.append(events)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.inner.query(sql, params)

    def count(self, experiment_id: str | None = None) -> int:
        return self.inner.count(experiment_id)

    def close(self) -> None:
        self.inner.close()


def ev(i: int, exp: str = "e") -> Event:
    return Event(type="llm_call", experiment_id=exp, unit_id=f"u{i}", metrics={"latency_ms": i})


@pytest.fixture
def store() -> Iterator[FlakyStore]:
    s = FlakyStore()
    yield s
    s.gate.set()
    s.close()


def make(store: FlakyStore, tmp_path: Path, **kw: Any) -> EventPipeline:
    kw.setdefault("retry_interval_s", 0.02)
    return EventPipeline(store, spool_dir=tmp_path / "spool", **kw)


def test_emit_flushes_by_time_and_counts(store: FlakyStore, tmp_path: Path) -> None:
    p = make(store, tmp_path, flush_interval_s=0.01)
    for i in range(2500):
        p.emit(ev(i))
    p.flush(5)
    assert store.count() == 2500
    assert all(len(b) <= 1000 for b in store.batches)  # max_batch
    s = p.stats
    assert (s.queued, s.stored, s.spooled, s.rejected, s.buffered) == (2500, 2500, 0, 0, 0)
    p.close()


def test_submit_is_durable_on_return(store: FlakyStore, tmp_path: Path) -> None:
    p = make(store, tmp_path, flush_interval_s=10)  # the interval never fires
    p.submit_sync([ev(1), ev(2)])
    assert store.count() == 2

    async def many() -> None:
        await asyncio.gather(*(p.submit([ev(i, "async")]) for i in range(100)))

    asyncio.run(many())
    assert store.count("async") == 100
    assert len(store.batches) < 101  # concurrent submits share flushes
    p.close()


def test_outage_spools_then_replays_in_order(store: FlakyStore, tmp_path: Path) -> None:
    p = make(store, tmp_path)
    store.down = True
    for i in range(5):
        p.submit_sync([ev(10 * i + j) for j in range(10)])  # acknowledged from the spool
    s = p.stats
    assert s.spooled == 50 and not s.store_available and s.spool_bytes > 0
    assert store.count() == 0
    store.down = False
    assert p.drain(10)
    assert store.count() == 50
    assert store.batches == [[f"u{10 * i + j}" for j in range(10)] for i in range(5)]
    s = p.stats
    assert (s.replayed, s.spool_bytes, s.store_available) == (50, 0, True)
    p.submit_sync([ev(99)])  # straight to the store again
    assert p.stats.stored == 1
    p.close()


def test_spool_limit_gives_backpressure(store: FlakyStore, tmp_path: Path) -> None:
    p = make(store, tmp_path, spool_limit_bytes=2_000)
    store.down = True
    p.submit_sync([ev(i) for i in range(5)])
    with pytest.raises(Backpressure, match="spool_limit_bytes") as info:
        p.submit_sync([ev(i) for i in range(100)])
    assert info.value.retry_after > 0 and info.value.code == "retry_later"
    assert p.stats.rejected == 100
    store.down = False
    assert p.drain(10)
    assert store.count() == 5
    p.close()


def test_emit_backpressure_when_buffer_full(store: FlakyStore, tmp_path: Path) -> None:
    store.gate.clear()  # the store hangs: nothing leaves the buffer
    p = make(store, tmp_path, max_buffer=50, max_batch=10, flush_interval_s=0.001)
    with pytest.raises(Backpressure, match="max_buffer"):
        for i in range(200):
            p.emit(ev(i))
    assert p.stats.rejected == 1
    store.gate.set()
    p.flush(5)
    assert store.count() == 50
    p.close()


def test_emitted_events_wait_when_spool_is_full(store: FlakyStore, tmp_path: Path) -> None:
    p = make(store, tmp_path, spool_limit_bytes=500, flush_interval_s=0.005)
    store.down = True
    for i in range(20):
        p.emit(ev(i))
    with pytest.raises(TimeoutError):
        p.flush(0.3)  # neither store nor spool can take them: they stay buffered
    assert p.stats.buffered > 0
    store.down = False
    assert p.drain(10)
    assert store.count() == 20  # none of the emitted events was dropped
    p.close()


def test_batch_limit_is_rejected_and_counted(store: FlakyStore, tmp_path: Path) -> None:
    p = make(store, tmp_path)
    with pytest.raises(LimitExceeded, match="1000 events per batch"):
        p.submit_sync([ev(i) for i in range(1001)])
    assert p.stats.rejected == 1001
    p.close()


def test_spool_survives_restart(store: FlakyStore, tmp_path: Path) -> None:
    first = make(store, tmp_path)
    store.down = True
    first.submit_sync([ev(i) for i in range(7)])
    first.close()
    store.down = False
    second = make(store, tmp_path)
    assert second.drain(10)
    assert store.count() == 7
    second.close()


def test_spool_directory_is_exclusive(store: FlakyStore, tmp_path: Path) -> None:
    # Pipelines share a spool folder, each in its own directory (test_spool_orphans.py); a
    # directory itself has one owner at a time.
    p = make(store, tmp_path)
    with pytest.raises(StoreUnavailable, match="in use"):
        Spool(p.spool.directory)
    p.close()


def test_torn_spool_record_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([ev(1), ev(2)])
    spool.append([ev(3)])
    spool.close()
    segment = next(tmp_path.glob("spool-*.log"))
    with segment.open("ab") as f:
        f.write(b"AB\x10\x00\x00\x00garbage")  # a record cut short by a crash
    again = Spool(tmp_path)
    got = []
    while (record := again.peek()) is not None:
        got.extend(e.unit_id for e in record.events)
        again.mark_replayed(record)
    assert got == ["u1", "u2", "u3"]
    assert again.is_empty() and again.dropped_torn == 1
    again.close()


def test_pipeline_on_real_duckdb_file(tmp_path: Path) -> None:
    real = open_store(f"duckdb://{tmp_path}/e.duckdb")
    p = EventPipeline(real, spool_dir=tmp_path / "spool")
    p.submit_sync([ev(i) for i in range(1000)])
    p.submit_sync([ev(i) for i in range(10)])
    p.close()
    assert real.count() == 1010
    real.close()
