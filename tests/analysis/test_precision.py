"""Variance without cancellation: per-unit values of 1e8 ± 1e-3 on every store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from abllm.analysis import analyze
from abllm.config import Experiment, loads_experiments
from abllm.events import EventStore, open_store

from .simdata import Arm, Sim, load, make_events

NOW = datetime(2024, 3, 10, tzinfo=UTC)
OFFSET = 1e8
YAML = """
experiments:
  - id: exp
    variants:
      - {id: control, control: true, llm: {provider: sim, model: m}}
      - {id: treatment, llm: {provider: sim, model: m}}
    metrics:
      - {name: score, type: mean, event: feedback, field: rating, role: primary}
"""


def _table(offset: float) -> pa.Table:
    """Ratings of 1e-3 × N(0, 1) (+0.5e-3 in the treatment), shifted by ``offset``."""
    base = make_events(Sim(units=600, seed=5, arms={"control": Arm(), "treatment": Arm()}))
    rng = np.random.default_rng(9)
    treated = np.array([v == "treatment" for v in base.column("variant_id").to_pylist()])
    tiny = 1e-3 * rng.normal(0, 1, base.num_rows) + 0.5e-3 * treated
    rating = base.column("rating").to_numpy(zero_copy_only=False)
    values = np.where(np.isnan(rating), np.nan, offset + tiny)
    i = base.schema.get_field_index("rating")
    return base.set_column(i, "rating", pa.array(values, pa.float64(), mask=np.isnan(values)))


def _score(store: EventStore, table: pa.Table, exp: Experiment) -> dict[str, Any]:
    load(store, table)
    res = analyze(exp, store, now=NOW, builtins=False).metrics["score"]
    cmp = res.comparisons["treatment"]
    return {"sd": res.arms["control"].sd, "diff": cmp.diff, "p": cmp.p_value}


@pytest.fixture(scope="module")
def exp() -> Experiment:
    return loads_experiments(YAML).get("exp")


@pytest.fixture(scope="module")
def reference(exp: Experiment) -> dict[str, Any]:
    """The same data without the offset (subtracting 1e8 is exact in float64)."""
    store = open_store("duckdb:///:memory:")
    try:
        return _score(store, _table(0.0), exp)
    finally:
        store.close()


def _check(got: dict[str, Any], ref: dict[str, Any]) -> None:
    assert ref["sd"] == pytest.approx(1e-3, rel=0.2)
    # The per-unit means themselves carry ~1e-8 of rounding at 1e8: 1e-3 relative is the bar
    # (the raw Σy² − (Σy)²/n would be off by orders of magnitude, or 0).
    assert got["sd"] == pytest.approx(ref["sd"], rel=1e-3)
    assert got["diff"] == pytest.approx(ref["diff"], rel=1e-3)
    assert got["p"] == pytest.approx(ref["p"], rel=1e-2, abs=1e-6)


def test_duckdb_keeps_the_variance_at_a_large_offset(
    exp: Experiment, reference: dict[str, Any]
) -> None:
    store = open_store("duckdb:///:memory:")
    try:
        _check(_score(store, _table(OFFSET), exp), reference)
    finally:
        store.close()


@pytest.fixture
def pg_store(pg_url: str, unique_name: str) -> Iterator[EventStore]:
    store = open_store(f"{pg_url}?schema={unique_name}")
    yield store
    store.query(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')
    store.close()


@pytest.mark.postgres
def test_postgres_keeps_the_variance_at_a_large_offset(
    pg_store: EventStore, exp: Experiment, reference: dict[str, Any]
) -> None:
    _check(_score(pg_store, _table(OFFSET), exp), reference)


@pytest.mark.clickhouse
def test_clickhouse_keeps_the_variance_at_a_large_offset(
    chdb_available: None, tmp_path: Path, exp: Experiment, reference: dict[str, Any]
) -> None:
    store = open_store(f"chdb://{tmp_path}/ch")
    try:
        _check(_score(store, _table(OFFSET), exp), reference)
    finally:
        store.close()


def test_summaries_merge_without_cancellation() -> None:
    from abllm.stats import MeanStats

    rng = np.random.default_rng(2)
    a, b = OFFSET + 1e-3 * rng.normal(size=500), OFFSET + 1e-3 * rng.normal(size=700)
    merged = MeanStats.from_values(a) + MeanStats.from_values(b)
    both = np.concatenate([a, b]) - OFFSET
    assert float(merged.variance) == pytest.approx(both.var(ddof=1), rel=1e-6)
    stacked = MeanStats.stack([MeanStats.from_values(a), MeanStats(3, 3.0, 5.0)])
    assert float(stacked.variance[0]) == pytest.approx((a - OFFSET).var(ddof=1), rel=1e-6)
    assert float(stacked.variance[1]) == pytest.approx(1.0)
