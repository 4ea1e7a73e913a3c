"""Quantile CIs take their event count from the unit-attributed relation they are computed on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from abllm.analysis import analyze
from abllm.config import Experiment, loads_experiments
from abllm.events import Event, open_store
from abllm.stats import QuantileStats, compare

from .simdata import THREE_ARMS, Sim, load, make_events

NOW = datetime(2024, 3, 10, tzinfo=UTC)
T = datetime(2024, 5, 1, 12, tzinfo=UTC)


def _p95(exp: Experiment, table: pa.Table) -> dict[str, tuple[float, float]]:
    store = load(open_store("duckdb:///:memory:"), table)
    try:
        res = analyze(exp, store, now=NOW)
    finally:
        store.close()
    return {v: a.ci for v, a in res.metrics["p95_latency_ms"].arms.items()}


def test_llm_calls_without_variant_id_are_attributed_through_the_unit(
    experiment: Experiment,
) -> None:
    table = make_events(Sim(units=600, seed=4, arms=THREE_ARMS.arms))
    clean = _p95(experiment, table)
    # The schema allows llm_call rows with variant_id null: a third of them lose it.
    types = table.column("type").to_pylist()
    variants = table.column("variant_id").to_pylist()
    dropped = [
        None if t == "llm_call" and i % 3 == 0 else v
        for i, (t, v) in enumerate(zip(types, variants, strict=True))
    ]
    i = table.schema.get_field_index("variant_id")
    nulls = _p95(experiment, table.set_column(i, "variant_id", pa.array(dropped, pa.string())))
    assert nulls.keys() == clean.keys()
    for v, ci in clean.items():
        assert nulls[v] == pytest.approx(ci, rel=1e-12), v
        assert ci[1] - ci[0] < 200.0  # not min..max


HOLDBACK = """
experiments:
  - id: hb
    holdout: 20
    variants:
      - {id: a, control: true, llm: {provider: sim, model: m}}
      - {id: b, llm: {provider: sim, model: m}}
"""


def test_holdback_p95_ci_matches_the_reference_on_its_own_events() -> None:
    exp = loads_experiments(HOLDBACK).get("hb")
    rng = np.random.default_rng(8)
    events: list[Event] = []
    values: dict[str, list[float]] = {"holdback": [], "exposed": []}
    units: dict[str, list[int]] = {"holdback": [], "exposed": []}
    for i in range(500):
        held = i % 5 == 0
        variant = None if held else ("a" if i % 2 else "b")
        ts = T + timedelta(seconds=i)
        attrs = {"reason": "holdout"} if held else {}
        events.append(Event(type="exposure", experiment_id="hb", variant_id=variant,
                            unit_id=f"u{i}", ts=ts, attrs=attrs))  # fmt: skip
        for lat in rng.lognormal(6.0, 0.5, size=int(rng.integers(2, 12))):
            # The gateway serves held-back units the control, and labels their calls so.
            events.append(Event(type="llm_call", experiment_id="hb", variant_id=variant or "a",
                                unit_id=f"u{i}", ts=ts + timedelta(seconds=5),
                                metrics={"latency_ms": float(lat)}))  # fmt: skip
            group = "holdback" if held else "exposed"
            values[group].append(float(lat))
            units[group].append(i)
    store = open_store("duckdb:///:memory:")
    store.append(events)
    res = analyze(exp, store, now=T + timedelta(days=1))
    store.close()
    held = res.holdback
    assert held is not None
    got = held.metrics["p95_latency_ms"].arms
    ref = {g: QuantileStats.from_events(values[g], units[g], 0.95) for g in values}
    want = compare(ref["holdback"], ref["exposed"])
    for group, arm in (("holdback", want.control), ("exposed", want.treatment)):
        assert got[group].mean == pytest.approx(arm.mean, rel=1e-12)
        assert got[group].ci == pytest.approx(arm.ci, rel=1e-9), group
        assert got[group].ci[1] - got[group].ci[0] < 0.5 * (max(values[group]) - min(values[group]))


def test_a_missing_event_count_is_an_error_code() -> None:
    ok = QuantileStats.from_events(np.arange(200.0), np.arange(200) // 4, 0.95)
    missing = QuantileStats(0.95, ok.n_events, ok.estimate, ok.lower, ok.upper, ok.cluster, 0.0)
    c = compare(ok, missing)
    assert c.error is not None and str(c.error) == "no_event_count"
