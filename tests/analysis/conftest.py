"""Fixtures of the analysis tests (the data generator lives in ``simdata``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pytest

from abllm.config import Experiment, loads_experiments
from abllm.events import EventStore, open_store

from .simdata import EXPERIMENT_YAML, load


@pytest.fixture(scope="session")
def experiment() -> Experiment:
    """Three arms, every metric type and aggregation, guardrails of every kind."""
    return loads_experiments(EXPERIMENT_YAML).get("exp")


@pytest.fixture
def duck() -> Iterator[Callable[[pa.Table], EventStore]]:
    """Factory: an in-memory DuckDB store loaded with a table (closed after the test)."""
    stores: list[EventStore] = []

    def make(table: pa.Table) -> EventStore:
        store = load(open_store("duckdb:///:memory:"), table)
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()
