"""Summaries add exactly, so partial aggregates (days, shards, segments) merge."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abllm.stats import CupedStats, MeanStats, ProportionStats, RatioStats, compare

values = st.lists(st.floats(0.0, 1000.0, allow_nan=False), min_size=2, max_size=40)


@settings(max_examples=100, deadline=None)
@given(values, values)
def test_merged_mean_summary_is_the_summary_of_all_units(a: list[float], b: list[float]) -> None:
    merged = MeanStats.from_values(a) + MeanStats.from_values(b)
    whole = MeanStats.from_values(a + b)
    assert merged.n == whole.n
    assert float(merged.sum) == pytest.approx(float(whole.sum), rel=1e-12, abs=1e-9)
    assert float(merged.sum_sq) == pytest.approx(float(whole.sum_sq), rel=1e-12, abs=1e-9)
    assert float(merged.variance) == pytest.approx(np.var(a + b, ddof=1), rel=1e-7, abs=1e-6)


def test_every_summary_adds_field_by_field() -> None:
    assert ProportionStats(10, 3) + ProportionStats(5, 1) == ProportionStats(15, 4)
    r = RatioStats(1, 2.0, 3.0, 4.0, 9.0, 6.0) + RatioStats(2, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert r == RatioStats(3, 3.0, 4.0, 5.0, 10.0, 7.0)
    c = CupedStats(1, 1.0, 1.0, 2.0, 4.0, 2.0) + CupedStats(1, 2.0, 4.0, 1.0, 1.0, 2.0)
    assert c == CupedStats(2, 3.0, 5.0, 3.0, 5.0, 4.0)
    assert c.outcome == MeanStats(2, 3.0, 5.0) and c.covariate == MeanStats(2, 3.0, 5.0)


def test_daily_partials_give_the_same_comparison() -> None:
    rng = np.random.default_rng(9)
    days_c = [rng.normal(3.8, 1.0, 100) for _ in range(7)]
    days_t = [rng.normal(3.9, 1.0, 100) for _ in range(7)]
    total_c = sum((MeanStats.from_values(d) for d in days_c[1:]), MeanStats.from_values(days_c[0]))
    total_t = sum((MeanStats.from_values(d) for d in days_t[1:]), MeanStats.from_values(days_t[0]))
    merged = compare(total_c, total_t)
    whole = compare(
        MeanStats.from_values(np.concatenate(days_c)), MeanStats.from_values(np.concatenate(days_t))
    )
    assert merged.p_value == pytest.approx(whole.p_value, rel=1e-9)


def test_stack_builds_array_backed_summaries() -> None:
    s = ProportionStats.stack([ProportionStats(10, 1), ProportionStats(20, 5)])
    np.testing.assert_array_equal(s.n, [10.0, 20.0])
    np.testing.assert_allclose(s.rate, [0.1, 0.25])
    r = RatioStats.from_values([2.0, 4.0], [1.0, 2.0])
    assert float(r.ratio) == 2.0 and float(r.ratio_variance) == 0.0
