"""The same events give the same result on DuckDB, PostgreSQL and ClickHouse (chdb), to 1e-9."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from abllm.analysis import analyze, result_to_json
from abllm.config import Experiment
from abllm.events import open_store

from .simdata import THREE_ARMS, assert_same, load, make_events

NOW = datetime(2024, 3, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_events(THREE_ARMS)


@pytest.fixture(scope="module")
def reference(table: pa.Table, experiment: Experiment) -> dict[str, Any]:
    store = load(open_store("duckdb:///:memory:"), table)
    try:
        return result_to_json(analyze(experiment, store, now=NOW))
    finally:
        store.close()


def test_reference_has_every_metric(reference: dict[str, Any]) -> None:
    names = set(reference["metrics"])
    configured = {"rating", "thumbs_up", "latency_ms", "p95_latency_ms", "judge", "last_rating"}
    assert configured <= names
    assert {"error_rate", "p50_latency_ms", "ttft_ms", "cost_per_success"} <= names
    # No data for retried/abandoned in the simulation: not reported.
    assert "retried" not in names and "abandoned" not in names
    assert reference["variants"]["control"]["units"] > 250


@pytest.fixture
def pg_store(pg_url: str, unique_name: str) -> Iterator[Any]:
    store = open_store(f"{pg_url}?schema={unique_name}")
    yield store
    store.query(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')
    store.close()


@pytest.mark.postgres
def test_postgres_matches_duckdb(
    pg_store: Any, table: pa.Table, experiment: Experiment, reference: dict[str, Any]
) -> None:
    load(pg_store, table)
    assert_same(reference, result_to_json(analyze(experiment, pg_store, now=NOW)))


@pytest.mark.clickhouse
def test_clickhouse_matches_duckdb(
    chdb_available: None,
    tmp_path: Path,
    table: pa.Table,
    experiment: Experiment,
    reference: dict[str, Any],
) -> None:
    store = load(open_store(f"chdb://{tmp_path}/ch"), table)
    try:
        # A second copy of every event: duplicates not merged yet must not count twice.
        load(store, table)
        assert_same(reference, result_to_json(analyze(experiment, store, now=NOW)))
    finally:
        store.close()
