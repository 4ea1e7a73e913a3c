"""Unit-clustered quantile CIs: gbstats oracle, reference computation, A/A validity."""

from __future__ import annotations

import numpy as np
import pytest
from gbstats.models.statistics import QuantileClusteredStatistic, QuantileStatistic

from abllm.errors import ValidationError
from abllm.stats import (
    ErrorCode,
    QuantileStats,
    TestConfig,
    compare,
    compare_many,
    quantile_bound_levels,
)


def _events(
    rng: np.random.Generator, units: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Latencies with a strong per-unit effect; units send 1 + Poisson(6) requests."""
    per_unit = 1 + rng.poisson(6.0, units)
    unit_ids = np.repeat(np.arange(units), per_unit)
    unit_speed = rng.lognormal(0.0, 0.6, units)[unit_ids]
    return 400.0 * scale * unit_speed * rng.lognormal(0.0, 0.25, unit_ids.size), unit_ids


def _gb(q: QuantileStats) -> QuantileClusteredStatistic:
    assert q.cluster is not None
    return QuantileClusteredStatistic(
        n=int(q.n_events),
        n_star=int(q.n_events),
        nu=float(q.level),
        quantile_hat=float(q.estimate),
        quantile_lower=float(q.lower),
        quantile_upper=float(q.upper),
        main_sum=float(q.cluster.sum_num),
        main_sum_squares=float(q.cluster.sum_num_sq),
        denominator_sum=float(q.cluster.sum_den),
        denominator_sum_squares=float(q.cluster.sum_den_sq),
        main_denominator_sum_product=float(q.cluster.sum_num_den),
        n_clusters=int(q.cluster.n),
    )


@pytest.mark.parametrize("level", [0.5, 0.95, 0.99])
def test_clustered_variance_matches_gbstats(level: float) -> None:
    rng = np.random.default_rng(1)
    x, units = _events(rng, 400)
    q = QuantileStats.from_events(x, units, level)
    gb = _gb(q)
    n = float(q.n_events)
    # gbstats multiplies by (n − 1)/n; otherwise the same estimator.
    assert float(q.variance) * (n - 1) / n == pytest.approx(gb.variance / gb.n, rel=1e-9)
    iid = QuantileStats.from_events(x, None, level)
    gb_iid = QuantileStatistic(
        n=int(n), n_star=int(n), nu=level, quantile_hat=float(iid.estimate),
        quantile_lower=float(iid.lower), quantile_upper=float(iid.upper),
    )  # fmt: skip
    assert float(iid.variance) * (n - 1) / n == pytest.approx(gb_iid.variance / gb_iid.n, rel=1e-9)
    assert float(q.variance) > 2 * float(iid.variance)  # clustering matters here


def test_reference_summary_fields() -> None:
    x = np.arange(1.0, 1001.0)
    units = np.repeat(np.arange(100), 10)
    q = QuantileStats.from_events(x, units, 0.9)
    lo, hi = quantile_bound_levels(0.9, 1000)
    assert q.estimate == np.quantile(x, 0.9)
    assert (q.lower, q.upper) == (np.quantile(x, float(lo)), np.quantile(x, float(hi)))
    assert q.cluster is not None and float(q.cluster.sum_den) == 1000
    assert float(q.cluster.sum_num) == np.sum(x <= q.estimate)


def test_difference_of_p95_between_arms() -> None:
    rng = np.random.default_rng(2)
    c = QuantileStats.from_events(*_events(rng, 800), 0.95)
    t = QuantileStats.from_events(*_events(rng, 800, scale=1.5), 0.95)
    res = compare(c, t, TestConfig(higher_is_better=False))
    assert res.kind == "quantile" and res.error is None
    assert res.diff == pytest.approx(float(t.estimate) - float(c.estimate))
    assert res.diff_se**2 == pytest.approx(float(c.variance) + float(t.variance), rel=1e-12)
    assert res.p_value < 1e-3 and res.chance_to_win < 0.01
    assert res.control.n == 800 and res.control.ci[0] < res.control.mean < res.control.ci[1]
    assert 0.3 < res.rel_lift < 0.7


def test_too_few_events_is_an_error_code() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=30)
    c = QuantileStats.from_events(x, np.arange(30) // 3, 0.99)
    res = compare(c, c)
    assert res.error is ErrorCode.TOO_FEW_EVENTS
    assert not res.significant


def test_level_validation() -> None:
    with pytest.raises(ValidationError, match="level"):
        QuantileStats(1.5, 10, 1.0, 0.5, 2.0)


def test_aa_clustered_quantile_keeps_its_size_where_iid_does_not() -> None:
    """300 seeded A/A tests on clustered latencies: clustered se ≈ 5 % FPR, i.i.d. far above."""
    rng = np.random.default_rng(20240605)
    clustered, iid = [], []
    for _ in range(300):
        xc, uc = _events(rng, 250)
        xt, ut = _events(rng, 250)
        clustered.append(
            (QuantileStats.from_events(xc, uc, 0.95), QuantileStats.from_events(xt, ut, 0.95))
        )
        iid.append(
            (QuantileStats.from_events(xc, None, 0.95), QuantileStats.from_events(xt, None, 0.95))
        )
    rates = {}
    for name, pairs in (("clustered", clustered), ("iid", iid)):
        table = compare_many(
            QuantileStats.stack([p[0] for p in pairs]), QuantileStats.stack([p[1] for p in pairs])
        )
        rates[name] = float(np.mean(table.p_value < 0.05))
    assert 0.02 <= rates["clustered"] <= 0.09, rates
    assert rates["iid"] > 0.15, rates
