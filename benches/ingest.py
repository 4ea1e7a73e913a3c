"""Durable ingestion throughput per backend, next to the plain driver doing row-by-row inserts.

Prints one JSON document. For each backend (DuckDB file, PostgreSQL, chdb) and batch size
(100, 1,000) it measures durable, deduplicated events/s:

- ``store_append``: one producer calling ``store.append(batch)`` (commit per batch);
- ``pipeline_submit``: 16 concurrent ``await pipeline.submit(batch)`` callers (the pipeline
  and writer group-commit what queues up), acknowledged only when durable;
- ``pipeline_emit``: the gateway's hot path, ``emit(event)`` one by one, then ``flush()``
  (durable at the end; the batch size is the pipeline's ``max_batch`` of 1,000);
- ``driver_row_by_row``: the plain driver inserting one row per statement with autocommit
  (the peer the targets compare against).

``--choice`` adds the embedded-store measurement behind docs/events.md: SQLite (WAL,
synchronous=FULL, UUID primary key) vs DuckDB for batch writes and an exact per-variant p95.

Usage: python benches/ingest.py [--events 100000] [--backends duckdb,postgres,chdb] [--choice]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abllm.events import Event, EventPipeline, EventStore, open_store
from abllm.events.schema import COLUMNS, to_columns
from abllm.events.sqlparams import clickhouse_literal

SUBMITTERS = 16
PG_URL = os.environ.get("ABLLM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def make_events(n: int) -> list[Event]:
    return [
        Event(
            type="llm_call",
            experiment_id="bench",
            variant_id="ab"[i % 2],
            unit_id=f"u{i % 5000}",
            trace_id=f"t{i}",
            metrics={
                "latency_ms": 100.0 + i % 900,
                "input_tokens": 200,
                "output_tokens": 50 + i % 100,
                "cost_usd": 0.0004,
                "error": i % 50 == 0,
                "custom": 1,
            },
            attrs={"model": "sim-small", "prompt_version": 3},
        )
        for i in range(n)
    ]


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def bench_append(store: EventStore, events: list[Event], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        store.append(events[i : i + batch])
    return rate(len(events), time.perf_counter() - start)


def bench_pipeline(store: EventStore, events: list[Event], batch: int, spool: Path) -> float:
    pipeline = EventPipeline(store, spool_dir=spool, max_batch=max(batch, 1000))
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]

    async def run() -> None:
        queue: asyncio.Queue[list[Event]] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)

        async def worker() -> None:
            while not queue.empty():
                await pipeline.submit(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(SUBMITTERS)))

    start = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - start
    pipeline.close()
    assert pipeline.stats.spooled == 0, "store failed during the bench"
    return rate(len(events), elapsed)


def bench_emit(store: EventStore, events: list[Event], spool: Path) -> float:
    pipeline = EventPipeline(store, spool_dir=spool, max_buffer=len(events))
    start = time.perf_counter()
    for event in events:
        pipeline.emit(event)
    pipeline.flush()
    elapsed = time.perf_counter() - start
    pipeline.close()
    return rate(len(events), elapsed)


def _row_values(events: list[Event]) -> list[tuple[Any, ...]]:
    cols = to_columns(events)
    return [(str(uuid.UUID(hex=r[0])), *r[1:]) for r in cols.rows()]


def driver_duckdb(path: Path, events: list[Event]) -> float:
    import duckdb

    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE t (" + ", ".join(f"c{i} VARCHAR" for i in range(len(COLUMNS))) + ")")
    sql = f"INSERT INTO t VALUES ({', '.join('?' * len(COLUMNS))})"
    rows = [tuple(None if v is None else str(v) for v in r) for r in _row_values(events)]
    start = time.perf_counter()
    for row in rows:
        conn.execute(sql, row)  # autocommit: one durable commit per row
    elapsed = time.perf_counter() - start
    conn.close()
    return rate(len(rows), elapsed)


def driver_postgres(url: str, schema: str, like: str, events: list[Event]) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(f'CREATE TABLE t (LIKE "{like}".abllm_events INCLUDING ALL)')
        sql = f"INSERT INTO t ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        rows = _row_values(events)
        start = time.perf_counter()
        for row in rows:
            conn.execute(sql, row)
        elapsed = time.perf_counter() - start
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return rate(len(rows), elapsed)


def driver_chdb(store: Any, events: list[Event]) -> float:
    rows = _row_values(events)
    cols = ", ".join(COLUMNS)
    start = time.perf_counter()
    for row in rows:
        values = ", ".join(clickhouse_literal(v) for v in row)
        store._command(f"INSERT INTO abllm_events ({cols}) VALUES ({values})")
    return rate(len(rows), time.perf_counter() - start)


def backend_urls(tmp: Path, tag: str) -> dict[str, Callable[[], str]]:
    return {
        "duckdb": lambda: f"duckdb://{tmp}/{tag}.duckdb",
        "postgres": lambda: f"{PG_URL}?schema=bench_{tag}",
        "chdb": lambda: f"chdb://{tmp}/{tag}.chdb",
    }


def drop(url: str) -> None:
    if url.startswith("postgresql"):
        store = open_store(url)
        store.query(f'DROP SCHEMA IF EXISTS "{url.rsplit("=", 1)[1]}" CASCADE')
        store.close()


def run_backend(name: str, events: list[Event], tmp: Path, row_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tag = uuid.uuid4().hex[:8]
    for batch in (100, 1000):
        for mode in ("store_append", "pipeline_submit"):
            url = backend_urls(tmp, f"{tag}_{mode}_{batch}")[name]()
            store = open_store(url)
            try:
                if mode == "store_append":
                    value = bench_append(store, events, batch)
                else:
                    value = bench_pipeline(store, events, batch, tmp / f"spool_{tag}_{batch}")
                assert store.count() == len(events)
            finally:
                store.close()
                drop(url)
            out[f"{mode}_batch_{batch}"] = value
    url = backend_urls(tmp, f"{tag}_emit")[name]()
    store = open_store(url)
    try:
        out["pipeline_emit"] = bench_emit(store, events, tmp / f"spool_{tag}_emit")
        assert store.count() == len(events)
    finally:
        store.close()
        drop(url)
    sample = events[:row_n]
    if name == "duckdb":
        out["driver_row_by_row"] = driver_duckdb(tmp / f"{tag}_rows.duckdb", sample)
    elif name == "postgres":
        ref = open_store(f"{PG_URL}?schema=bench_{tag}b")  # a table to copy the schema from
        try:
            out["driver_row_by_row"] = driver_postgres(
                PG_URL, f"bench_{tag}r", f"bench_{tag}b", sample
            )
        finally:
            ref.close()
            drop(f"{PG_URL}?schema=bench_{tag}b")
    else:
        store = open_store(f"chdb://{tmp}/{tag}_rows.chdb")
        try:
            out["driver_row_by_row"] = driver_chdb(store, sample)
        finally:
            store.close()
    out["driver_row_by_row_rows"] = len(sample)
    return out


def embedded_choice(tmp: Path, n_write: int, n_agg: int) -> dict[str, Any]:
    """SQLite WAL vs DuckDB: batch writes (durable, deduplicated) and an exact p95 per variant."""
    events = make_events(n_write)
    result: dict[str, Any] = {}
    db = sqlite3.connect(tmp / "choice.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # durable per commit, like DuckDB's WAL
    db.execute(
        "CREATE TABLE abllm_events ("
        + ", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'event_id' else 'ANY'}" for c in COLUMNS)
        + ") STRICT"
    )
    sql = f"INSERT OR IGNORE INTO abllm_events VALUES ({', '.join('?' * len(COLUMNS))})"
    for batch in (100, 1000):
        db.execute("DELETE FROM abllm_events")
        start = time.perf_counter()
        for i in range(0, len(events), batch):
            rows = [
                (str(uuid.UUID(hex=r[0])), r[1].isoformat(), *r[2:])
                for r in to_columns(events[i : i + batch]).rows()
            ]
            db.execute("BEGIN")
            db.executemany(sql, rows)
            db.execute("COMMIT")
        result[f"sqlite_wal_write_batch_{batch}"] = rate(len(events), time.perf_counter() - start)
        store = open_store(f"duckdb://{tmp}/choice_{batch}.duckdb")
        result[f"duckdb_write_batch_{batch}"] = bench_append(store, events, batch)
        store.close()

    # Aggregation: n_agg rows, exact p95 of latency per variant.
    import duckdb

    con = duckdb.connect(str(tmp / "agg.duckdb"))
    con.execute(
        f"CREATE TABLE t AS SELECT CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END AS variant_id, "
        f"random() * 1000 AS latency_ms FROM range({n_agg}) r(i)"
    )
    start = time.perf_counter()
    con.execute("SELECT variant_id, quantile_disc(latency_ms, 0.95) FROM t GROUP BY 1").fetchall()
    result["duckdb_exact_p95_s"] = round(time.perf_counter() - start, 3)
    db.execute("CREATE TABLE t (variant_id TEXT, latency_ms REAL)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO t VALUES (?, ?)", con.execute("SELECT * FROM t").fetchall())
    db.execute("COMMIT")
    con.close()
    start = time.perf_counter()
    db.execute(
        "SELECT variant_id, latency_ms FROM (SELECT variant_id, latency_ms, row_number() OVER "
        "(PARTITION BY variant_id ORDER BY latency_ms) AS rn, count(*) OVER "
        "(PARTITION BY variant_id) AS n FROM t) WHERE rn = CAST(0.95 * n AS INTEGER)"
    ).fetchall()
    result["sqlite_exact_p95_s"] = round(time.perf_counter() - start, 3)
    result["agg_rows"] = n_agg
    result["write_events"] = n_write
    db.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--row-by-row", type=int, default=2_000, help="rows for the driver peer")
    parser.add_argument("--backends", default="duckdb,postgres,chdb")
    parser.add_argument("--choice", action="store_true", help="also run SQLite vs DuckDB")
    parser.add_argument("--agg-rows", type=int, default=2_000_000)
    args = parser.parse_args()

    events = make_events(args.events)
    tmp = Path(tempfile.mkdtemp(prefix="abllm-bench-"))
    report: dict[str, Any] = {
        "bench": "ingest",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "events": args.events,
        "unit": "durable, deduplicated events per second",
        "backends": {},
    }
    try:
        for name in args.backends.split(","):
            try:
                report["backends"][name] = run_backend(name, events, tmp, args.row_by_row)
            except Exception as exc:  # a missing server: report it, measure the rest
                report["backends"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        if args.choice:
            report["embedded_choice"] = embedded_choice(
                tmp, min(args.events, 50_000), args.agg_rows
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
