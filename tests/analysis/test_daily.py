"""Cumulative daily results: one point per day, growing samples, the last equal to analyze()."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from itertools import pairwise

import pytest

from abllm.analysis import analyze, daily_results
from abllm.config import Experiment
from abllm.errors import NotFound
from abllm.events import open_store

from .simdata import THREE_ARMS, load, make_events

NOW = datetime(2024, 3, 5, 6, tzinfo=UTC)


def test_daily_points_accumulate_and_end_at_the_full_result(experiment: Experiment) -> None:
    store = load(open_store("duckdb:///:memory:"), make_events(THREE_ARMS))
    try:
        points = daily_results(experiment, store, "latency_ms", now=NOW)
        full = analyze(experiment, store, now=NOW)
        with pytest.raises(NotFound, match="no metric 'nope'"):
            daily_results(experiment, store, "nope", now=NOW)
    finally:
        store.close()
    assert [p.day for p in points] == [date(2024, 3, d) for d in (1, 2, 3, 4, 5)]
    assert points[-1].until == NOW
    ns = [p.arms["control"].n for p in points]
    assert ns == sorted(ns) and ns[0] < ns[-1]
    last, ref = points[-1].comparisons["b"], full.metrics["latency_ms"].comparisons["b"]
    assert math.isclose(last.diff, ref.diff, rel_tol=1e-9)
    assert math.isclose(last.p_value, ref.p_value, rel_tol=1e-9)
    assert last.diff_ci == pytest.approx(ref.diff_ci, rel=1e-9)
    assert points[-1].arms["b"].mean == pytest.approx(full.metrics["latency_ms"].arms["b"].mean)


def test_hourly_points_cut_at_each_utc_hour_and_end_at_the_full_result(
    experiment: Experiment,
) -> None:
    store = load(open_store("duckdb:///:memory:"), make_events(THREE_ARMS))
    now = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)  # half a day into the data
    try:
        points = daily_results(experiment, store, "latency_ms", now=now, hourly=True)
        full = analyze(experiment, store, now=now)
    finally:
        store.close()
    assert len(points) > 6
    ends = [p.until for p in points]
    assert all(t.minute == 59 for t in ends[:-1]) and ends[-1] == now
    assert all((b - a).total_seconds() == 3600 for a, b in pairwise(ends[:-1]))
    units = [sum(p.units.values()) for p in points]
    assert units == sorted(units) and units[-1] == sum(v.units for v in full.variants.values())
    last, ref = points[-1].comparisons["b"], full.metrics["latency_ms"].comparisons["b"]
    assert math.isclose(last.diff, ref.diff, rel_tol=1e-9)
