"""Always-valid results do not flicker: the primary's sequences intersect over the daily looks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from abllm.analysis import Decision, analyze
from abllm.analysis.history import intersect, looks
from abllm.analysis.result import Comparison, MetricResult
from abllm.config import DecisionRule, loads_experiments
from abllm.events import Event, open_store

T = datetime(2024, 7, 1, 0, 30, tzinfo=UTC)
YAML = """
experiments:
  - id: h
    variants:
      - {id: a, control: true, llm: {provider: sim, model: m}}
      - {id: b, llm: {provider: sim, model: m}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
    decision: {sequential: true, min_units_per_arm: 100}
"""


def _events(days: list[tuple[int, float]]) -> list[Event]:
    """Per day: units per arm and the treatment's shift of a N(3.5, 1) rating."""
    rng = np.random.default_rng(4)
    out: list[Event] = []
    i = 0
    for day, (units, shift) in enumerate(days):
        for arm in ("a", "b"):
            for _ in range(units):
                ts = T + timedelta(days=day, seconds=i % 80_000)
                unit = f"u{i}"
                i += 1
                out.append(Event(type="exposure", experiment_id="h", variant_id=arm,
                                 unit_id=unit, ts=ts))  # fmt: skip
                rating = rng.normal(3.5 + (shift if arm == "b" else 0.0), 1.0)
                later = ts + timedelta(seconds=5)
                out.append(Event(type="feedback", experiment_id="h", variant_id=arm, unit_id=unit,
                                 ts=later, metrics={"rating": rating}))  # fmt: skip
    return out


def test_a_ship_does_not_vanish_the_next_days_on_noise() -> None:
    exp = loads_experiments(YAML).get("h")
    store = open_store("duckdb:///:memory:")
    try:
        store.append(_events([(400, 0.45), (700, 0.0), (700, 0.0)]))
        first = analyze(exp, store, now=T + timedelta(hours=23))
        assert first.recommendation.decision is Decision.SHIP
        later = analyze(exp, store, now=T + timedelta(days=2, hours=23))
    finally:
        store.close()
    cmp = later.metrics["rating"].comparisons["b"]
    assert later.recommendation.decision is Decision.SHIP, later.recommendation.reason
    # the running minimum, up to the last digits of DuckDB's parallel float sums
    first_p = first.metrics["rating"].comparisons["b"].p_value_sequential
    assert cmp.p_value_sequential <= first_p * (1 + 1e-9)
    assert cmp.seq_diff_ci[0] > 0


def _cmp(p: float, lo: float, hi: float) -> Comparison:
    nan = float("nan")
    return Comparison(0.1, (nan, nan), p, p, 0.05, (nan, nan), 0.9, p, p < 0.05,
                      seq_diff_ci=(lo, hi), seq_rel_ci=(lo / 2, hi / 2))  # fmt: skip


def test_intersection_keeps_the_tightest_ends_and_the_smallest_p() -> None:
    def metric(c: Comparison) -> MetricResult:
        return MetricResult("m", "mean", "primary", "increase", False, "m", {}, {"b": c})

    now = metric(_cmp(0.2, -0.1, 0.4))
    past = [metric(_cmp(0.01, 0.02, 0.5)), metric(_cmp(0.3, -0.3, 0.3))]
    out = intersect(now, past, DecisionRule()).comparisons["b"]
    assert out.p_value_sequential == 0.01 and out.significant
    assert out.seq_diff_ci == (0.02, 0.3)
    assert out.seq_rel_ci == (0.01, 0.15)
    errored = intersect(metric(replace(_cmp(0.2, -0.1, 0.4), error="zero_variance")), past,
                        DecisionRule()).comparisons["b"]  # fmt: skip
    assert errored.p_value_sequential == 0.2


def test_looks_are_day_ends_before_now() -> None:
    got = looks(T, T + timedelta(days=2, hours=1))
    assert [x.date() for x in got] == [T.date(), (T + timedelta(days=1)).date()]
    assert looks(T, T + timedelta(hours=2)) == []
