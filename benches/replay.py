"""Ingestion throughput while a spool replays, against normal throughput.

Prints one JSON document. For each backend: 16 concurrent ``await pipeline.submit(batch)``
callers (batches of 100, durable on return) run for ``--seconds``; that is *normal*. Then the
store goes down (a wrapper raising ``StoreUnavailable``, as an outage does) while a backlog of
``--backlog`` events is spooled, comes back, and the same load runs while the replayer drains the
backlog: that is *during replay*. Reported: events/s of both phases, their ratio (the target is
>= 0.5), how much of the backlog was replayed meanwhile, and the p99 submit latency.

Usage: python benches/replay.py [--seconds 5] [--backlog 100000] [--backends duckdb,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from abllm.errors import StoreUnavailable
from abllm.events import Event, EventPipeline, EventStore, open_store

SUBMITTERS = 16
BATCH = 100
PG_URL = os.environ.get("ABLLM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class Switchable:
    """An ``EventStore`` that can be taken down (raises ``StoreUnavailable``) and back up."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.events_relation = inner.events_relation
        self.down = False

    def append(self, events: Sequence[Event]) -> int:
        if self.down:
            raise StoreUnavailable("down (bench)")
        return self.inner.append(events)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.inner.query(sql, params)

    def count(self, experiment_id: str | None = None) -> int:
        return self.inner.count(experiment_id)

    def close(self) -> None:
        self.inner.close()


def batch(n: int = BATCH) -> list[Event]:
    return [
        Event(
            type="llm_call",
            experiment_id="bench",
            variant_id="ab"[i % 2],
            unit_id=f"u{i}",
            metrics={"latency_ms": 100.0 + i, "output_tokens": 50},
        )
        for i in range(n)
    ]


async def load(pipeline: EventPipeline, seconds: float) -> tuple[int, list[float]]:
    """Events made durable by ``SUBMITTERS`` concurrent submitters in ``seconds``."""
    deadline = time.monotonic() + seconds
    done = 0
    latencies: list[float] = []

    async def submitter() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            events = batch()
            started = time.perf_counter()
            await pipeline.submit(events)
            latencies.append(time.perf_counter() - started)
            done += len(events)

    await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
    return done, latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2) if ordered else 0.0


def run(backend: str, url: str, seconds: float, backlog: int, tmp: Path) -> dict[str, Any]:
    store = Switchable(open_store(url))
    pipeline = EventPipeline(store, spool_dir=tmp / f"spool-{backend}", flush_interval_s=0.005)
    try:
        normal, normal_lat = asyncio.run(load(pipeline, seconds))
        store.down = True
        for _ in range(backlog // 1000):
            pipeline.submit_sync(batch(1000))
        spooled = pipeline.stats.spool_bytes
        before = pipeline.stats.replayed
        store.down = False
        during, during_lat = asyncio.run(load(pipeline, seconds))
        replayed = pipeline.stats.replayed - before
        drained = pipeline.drain(120)
    finally:
        pipeline.close()
        store.close()
    normal_rate = normal / seconds
    during_rate = during / seconds
    return {
        "normal_events_per_s": round(normal_rate),
        "during_replay_events_per_s": round(during_rate),
        "ratio": round(during_rate / normal_rate, 3),
        "backlog_events": backlog,
        "backlog_bytes": spooled,
        "replayed_during_load": replayed,
        "drained": drained,
        "p99_submit_ms": {"normal": p99(normal_lat), "during_replay": p99(during_lat)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--backends", default="duckdb,postgres")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "submitters": SUBMITTERS,
        "batch": BATCH,
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for backend in args.backends.split(","):
            if backend == "duckdb":
                url = f"duckdb:///{tmp / 'replay.duckdb'}"
            else:
                url = f"{PG_URL}?schema=bench_replay_{uuid.uuid4().hex[:8]}"
            results[backend] = run(backend, url, args.seconds, args.backlog, tmp)
            if backend == "postgres":
                cleanup = open_store(url)
                cleanup.query(f'DROP SCHEMA "{url.rsplit("=", 1)[1]}" CASCADE')
                cleanup.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
