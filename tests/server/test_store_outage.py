"""A frozen or absent event store never hangs a request, and ``serve`` starts without it.

Both run against a throwaway PostgreSQL cluster: frozen with SIGSTOP (connections stay open,
nothing answers, the kernel keeps acknowledging) or not started at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from abllm.config import loads_experiments
from abllm.events import EventPipeline, open_store
from abllm.server import ServerThread, create_app
from events.pgcluster import ThrowawayPostgres

from .healthprobe import HealthProbe
from .serveproc import running_serve
from .test_app import http

CONFIG = """
experiments:
  - id: hang
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
"""


@pytest.fixture
def cluster() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        yield pg
    finally:
        pg.cleanup()


def batch(n: int) -> list[dict[str, Any]]:
    return [
        {"event_id": str(uuid4()), "type": "outcome", "experiment_id": "hang", "unit_id": f"u{i}"}
        for i in range(n)
    ]


@pytest.mark.postgres
@pytest.mark.slow
def test_frozen_store_never_hangs_events_or_feedback(
    cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    cluster.start()
    store = open_store(cluster.url)
    pipeline = EventPipeline(store, spool_dir=tmp_path / "spool", retry_interval_s=0.2)
    app = create_app(loads_experiments(CONFIG), store, pipeline=pipeline)
    acked: list[str] = []
    with ServerThread(app) as srv:
        first = batch(5)
        assert http("POST", f"{srv.url}/v1/events", first)[0] == 200
        acked += [e["event_id"] for e in first]
        cluster.freeze()
        try:
            with HealthProbe(srv.url) as probe:
                waits = []
                for _ in range(6):
                    events = batch(20)
                    started = time.monotonic()
                    status, body = http("POST", f"{srv.url}/v1/events", events)
                    waits.append(time.monotonic() - started)
                    assert status == 200, body
                    acked += [e["event_id"] for e in events]
                started = time.monotonic()
                fb = {"experiment_id": "hang", "unit_id": "fb-unit", "rating": 4}
                status, body = http("POST", f"{srv.url}/v1/feedback", fb)
                waits.append(time.monotonic() - started)
                assert status == 200, body
                acked.append(body["event_id"])
                time.sleep(0.3)
        finally:
            cluster.thaw()
        # The first write waits for the store's 3 s write timeout; the rest go to the spool.
        assert max(waits) < 5.0, waits
        assert sorted(waits)[-2] < 1.0, waits
        assert probe.errors == [] and probe.slowest < 0.1, (probe.slowest, probe.errors)
        assert any(b["store"]["status"] == "down" for b in probe.bodies)
        assert any(b["status"] == "degraded" for b in probe.bodies)
        assert pipeline.drain(30)
        status, health = http("GET", f"{srv.url}/healthz")
        assert (status, health["status"], health["store"]["status"]) == (200, "ok", "up")
    stats = pipeline.stats
    pipeline.close()
    stored = {str(row[0]) for row in store.query("SELECT event_id FROM abllm_events")}
    store.close()
    assert stats.spooled > 0 and stats.replayed > 0
    assert [e for e in acked if e not in stored] == []


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_starts_while_the_store_is_down_and_recovers(
    cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    options = ["--store", cluster.url]  # initialised, never started: connection refused
    options += ["--state", f"sqlite:///{tmp_path / 'state.sqlite'}", "--sticky", "never"]
    options += ["--spool-dir", str(tmp_path / "spool")]
    with running_serve(CONFIG, tmp_path, *options) as url:
        events = batch(30)
        status, body = http("POST", f"{url}/v1/events", events)
        assert (status, body) == (200, {"accepted": 30})
        status, health = http("GET", f"{url}/healthz")
        assert (status, health["status"], health["store"]["status"]) == (200, "degraded", "down")

        cluster.start()
        deadline = time.monotonic() + 30
        while True:
            health = http("GET", f"{url}/healthz")[1]
            if health["store"]["status"] == "up" and health["spool"]["status"] == "empty":
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
    store = open_store(cluster.url)
    try:
        assert store.count("hang") == 30
    finally:
        store.close()
