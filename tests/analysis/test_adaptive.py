"""Bandit experiments: IPW arm estimates from the recorded propensities, p-values n/a."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from abllm.analysis import analyze
from abllm.assign import assign
from abllm.assign.core import RuntimeState
from abllm.config import loads_experiments
from abllm.events import Event, open_store
from abllm.gateway.measure import exposure_event

T = datetime(2024, 8, 1, tzinfo=UTC)
YAML = """
experiments:
  - id: bd
    variants:
      - {{id: a, control: true, llm: {{provider: sim, model: m}}}}
      - {{id: b, llm: {{provider: sim, model: m}}}}
    metrics:
      - {{name: score, type: mean, event: feedback, field: rating, role: primary}}
    {bandit}
"""


def _run(bandit: str, url: str = "duckdb:///:memory:") -> tuple[float, float, object]:
    """A time trend (mean 1 then 3) while the allocation moves from 50/50 to 90/10 for a."""
    exp = loads_experiments(YAML.format(bandit=bandit)).get("bd")
    rng = np.random.default_rng(12)
    events: list[Event] = []
    i = 0
    for units, weights, level in ((3000, {"a": 1, "b": 1}, 1.0), (3000, {"a": 9, "b": 1}, 3.0)):
        state = RuntimeState(weights=weights)
        for _ in range(units):
            unit = f"u{i}"
            a = assign(exp, unit, state=state, now=T)
            ts = T + timedelta(seconds=i)
            ev = exposure_event(exp, a.variant_id, unit, f"t{i}", str(a.reason), a.weights,
                                a.probability)  # fmt: skip
            events.append(ev.model_copy(update={"ts": ts, "unit_id": unit}))
            events.append(Event(type="feedback", experiment_id="bd", variant_id=a.variant_id,
                                unit_id=unit, ts=ts + timedelta(seconds=1),
                                metrics={"rating": float(rng.normal(level, 0.5))}))  # fmt: skip
            i += 1
    store = open_store(url)
    store.append(events)
    res = analyze(exp, store, now=T + timedelta(days=1))
    store.close()
    m = res.metrics["score"]
    return m.arms["a"].mean, m.arms["b"].mean, res


def test_ipw_removes_the_bias_of_a_moving_allocation() -> None:
    naive_a, naive_b, _ = _run("")
    assert naive_a - naive_b > 0.5  # a got more of the later, higher-scoring period
    a, b, res = _run("bandit: {reward_metric: score, kind: gaussian}")
    assert a == pytest.approx(2.0, abs=0.05) and b == pytest.approx(2.0, abs=0.08)
    cmp = res.metrics["score"].comparisons["b"]  # type: ignore[attr-defined]
    assert cmp.diff_ci[0] < 0 < cmp.diff_ci[1]
    assert math.isnan(cmp.p_value) and math.isnan(cmp.p_value_sequential)
    assert not cmp.significant
    assert any("inverse-propensity" in w for w in res.warnings)  # type: ignore[attr-defined]


BANDIT = "bandit: {reward_metric: score, kind: gaussian}"


@pytest.mark.postgres
def test_postgres_gives_the_same_ipw_estimates(pg_url: str, unique_name: str) -> None:
    want = _run(BANDIT)[:2]
    url = f"{pg_url}?schema={unique_name}"
    try:
        assert _run(BANDIT, url)[:2] == pytest.approx(want, rel=1e-9)
    finally:
        store = open_store(url)
        store.query(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')
        store.close()


@pytest.mark.clickhouse
def test_clickhouse_gives_the_same_ipw_estimates(chdb_available: None, tmp_path: Path) -> None:
    want = _run(BANDIT)[:2]
    assert _run(BANDIT, f"chdb://{tmp_path}/ch")[:2] == pytest.approx(want, rel=1e-9)
