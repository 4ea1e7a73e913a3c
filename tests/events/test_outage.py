"""Outage test: PostgreSQL goes down during ingestion and comes back.

Nothing acknowledged may be lost, the spool must drain, and no event may be stored twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from abllm.errors import Backpressure
from abllm.events import Event, EventPipeline, open_store

from .pgcluster import ThrowawayPostgres


@pytest.fixture
def cluster() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.cleanup()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_outage_loses_nothing_acknowledged(
    cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    store = open_store(cluster.url)
    pipeline = EventPipeline(
        store, spool_dir=tmp_path / "spool", flush_interval_s=0.005, retry_interval_s=0.1
    )
    acked: list[UUID] = []
    refused = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal refused
        i = 0
        while not stop.is_set():
            batch = [
                Event(
                    event_id=UUID(int=i + k + 1),
                    type="exposure",
                    experiment_id="outage",
                    unit_id=f"u{(i + k) % 50}",
                    variant_id="a",
                )
                for k in range(20)
            ]
            try:
                pipeline.submit_sync(batch, timeout=30)
            except Backpressure:
                refused += 1
                continue
            acked.extend(e.event_id for e in batch)
            i += 20
            time.sleep(0.002)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(0.4)
        before_outage = len(acked)
        cluster.stop("immediate")  # a crash, mid-ingestion
        time.sleep(1.0)
        during_outage = len(acked) - before_outage
        cluster.start()
        time.sleep(0.5)
    finally:
        stop.set()
        producer.join(30)
    assert pipeline.drain(30), "spool did not drain after the server came back"
    stats = pipeline.stats
    pipeline.close()

    assert before_outage > 0 and during_outage > 0  # ingestion went on during the outage
    assert stats.spooled > 0 and stats.replayed > 0 and stats.spool_bytes == 0
    assert refused == 0
    try:
        total, distinct = store.query(
            "SELECT count(*), count(DISTINCT event_id) FROM abllm_events"
        )[0]
        stored = {row[0] for row in store.query("SELECT event_id FROM abllm_events")}
    finally:
        store.close()
    assert total == distinct
    lost = [e for e in acked if e not in stored]
    assert lost == [], f"{len(lost)} acknowledged events lost"
