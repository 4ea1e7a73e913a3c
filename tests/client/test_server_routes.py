"""``POST /v1/events`` and ``GET /v1/config``: the two routes the SDK talks to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from abllm.assign import RuntimeState
from abllm.config import ExperimentFile, parse_experiments
from abllm.events import EventPipeline, open_store
from abllm.gateway import InMemoryStateView
from abllm.server import create_app

from .conftest import FlakyPipeline


def event(unit: str = "u1", **extra: object) -> dict[str, object]:
    return {
        "type": "feedback",
        "experiment_id": "exp_tone",
        "variant_id": "warm",
        "unit_id": unit,
        "metrics": {"rating": 4},
        **extra,
    }


@pytest.fixture
def app_parts(
    config: ExperimentFile, tmp_path: Path
) -> Iterator[tuple[TestClient, FlakyPipeline, InMemoryStateView]]:
    store = open_store("duckdb:///:memory:")
    pipeline = FlakyPipeline(EventPipeline(store, spool_dir=tmp_path / "spool"))
    state = InMemoryStateView()
    app = create_app(config, pipeline=pipeline, state=state)  # type: ignore[arg-type]
    with TestClient(app) as http:
        yield http, pipeline, state
    pipeline.close()
    store.close()


def stored(pipeline: FlakyPipeline) -> list[tuple[object, ...]]:
    return pipeline.store.query("SELECT unit_id, rating, attrs FROM abllm_events ORDER BY unit_id")


def test_events_array_and_object_forms_are_durable_when_acknowledged(app_parts) -> None:
    http, pipeline, _ = app_parts
    r = http.post("/v1/events", json=[event("u1"), event("u2")])
    assert r.status_code == 200 and r.json() == {"accepted": 2}
    # acknowledged means durable: the rows are in the store without any flush
    assert [row[0] for row in stored(pipeline)] == ["u1", "u2"]
    r = http.post("/v1/events", json={"events": [event("u3")]})
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    assert len(stored(pipeline)) == 3


def test_retried_batch_is_deduplicated_and_pii_is_removed(app_parts) -> None:
    http, pipeline, _ = app_parts
    batch = [
        event(
            "bob@example.com",
            event_id="01900000-0000-7000-8000-000000000001",
            attrs={"note": "call me at bob@example.com"},
        )
    ]
    assert http.post("/v1/events", json=batch).status_code == 200
    assert http.post("/v1/events", json=batch).status_code == 200
    rows = stored(pipeline)
    assert len(rows) == 1
    unit, rating, attrs = rows[0]
    assert str(unit).startswith("pii:") and rating == 4.0
    assert "bob@example.com" not in str(attrs)


@pytest.mark.parametrize(
    ("body", "status", "code", "needle"),
    [
        ([event()] * 1001, 400, "limit_exceeded", "1000 events"),
        ([event(attrs={"blob": "x" * 20_000})] * 60, 400, "limit_exceeded", "1048576 bytes"),
        ([event(metricz={})], 400, "invalid_request", "metricz"),
        ([{**event(), "type": "click"}], 400, "invalid_request", "type"),
        ({"events": [event()], "extra": 1}, 400, "invalid_request", "extra"),
        ({"batch": []}, 400, "invalid_request", "events"),
    ],
)
def test_events_errors_name_the_limit_or_field(app_parts, body, status, code, needle) -> None:
    http, _, _ = app_parts
    r = http.post("/v1/events", content=json.dumps(body))
    assert r.status_code == status
    assert r.json()["error"]["code"] == code and needle in r.json()["error"]["message"]


def test_events_not_json_and_back_pressure(app_parts) -> None:
    http, pipeline, _ = app_parts
    r = http.post("/v1/events", content=b"[{")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    pipeline.failures = 1
    r = http.post("/v1/events", json=[event()])
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "retry_later"
    assert http.post("/v1/events", json=[event()]).status_code == 200


def test_events_without_a_store_is_503(config: ExperimentFile) -> None:
    with TestClient(create_app(config, None)) as http:
        r = http.post("/v1/events", json=[event()])
    assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"


def test_config_round_trips_and_carries_runtime_state(app_parts, config: ExperimentFile) -> None:
    http, _, state = app_parts
    state.set("exp_tone", RuntimeState(killed=True, weights={"control": 1, "warm": 3}, version=4))
    body = http.get("/v1/config").json()
    assert parse_experiments({"experiments": body["experiments"]}) == config
    assert body["state"]["exp_tone"] == {
        "killed": True,
        "paused": False,
        "traffic": None,
        "weights": {"control": 1, "warm": 3},
        "paused_variants": [],
        "winner": None,
        "winner_percent": None,
        "version": 4,
    }
    assert body["state"]["exp_target"]["killed"] is False
