"""Welch t-test, delta-method ratios, CUPED and Fieller relative intervals.

Oracles: scipy.stats.ttest_ind(equal_var=False) on the raw data, and GrowthBook's gbstats
(TwoSidedTTest, absolute difference) where its definitions match ours.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import (
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from abllm.stats import (
    CupedStats,
    Hypothesis,
    MeanStats,
    RatioStats,
    TestConfig,
    compare,
)

from ._data import cuped_data, cuped_pair, lognormal_arms, mean_pair, ratio_pair

TOL = dict(rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_matches_scipy_ttest_ind(alternative: str) -> None:
    a, b = lognormal_arms()
    ref = stats.ttest_ind(b, a, equal_var=False, alternative=alternative)
    cfg = TestConfig(hypothesis=Hypothesis(alternative))  # type: ignore[arg-type]
    c = compare(MeanStats.from_values(a), MeanStats.from_values(b), cfg)
    assert c.p_value == pytest.approx(ref.pvalue, **TOL)
    assert c.df == pytest.approx(ref.df, **TOL)
    assert c.diff == pytest.approx(b.mean() - a.mean(), **TOL)
    if alternative == "two-sided":
        ci = ref.confidence_interval(0.95)
        assert c.diff_ci == pytest.approx((ci.low, ci.high), **TOL)
    else:
        # One-sided tests report the 1 − 2α two-sided interval; its relevant end is the bound.
        ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.90)
        assert c.diff_ci == pytest.approx((ci.low, ci.high), **TOL)


def test_arm_summaries_are_the_sample_moments() -> None:
    a, b = lognormal_arms()
    c = compare(MeanStats.from_values(a), MeanStats.from_values(b))
    assert c.control.n == len(a)
    assert c.control.mean == pytest.approx(a.mean(), **TOL)
    assert c.treatment.sd == pytest.approx(b.std(ddof=1), **TOL)
    assert c.treatment.se == pytest.approx(stats.sem(b), **TOL)
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=stats.sem(a))
    assert c.control.ci == pytest.approx((lo, hi), **TOL)


@pytest.mark.parametrize(("alternative", "null"), [("less", 0.10), ("greater", -0.05)])
def test_relative_margin_is_welch_on_scaled_control(alternative: str, null: float) -> None:
    """H0: μT/μC − 1 = m is the Welch test of treatment against (1 + m) × control."""
    a, b = lognormal_arms()
    cfg = TestConfig(hypothesis=Hypothesis(alternative, null, relative=True))  # type: ignore[arg-type]
    c = compare(MeanStats.from_values(a), MeanStats.from_values(b), cfg)
    ref = stats.ttest_ind(b, (1 + null) * a, equal_var=False, alternative=alternative)
    assert c.p_value == pytest.approx(ref.pvalue, **TOL)


def test_absolute_margin_is_welch_on_shifted_control() -> None:
    a, b = lognormal_arms()
    cfg = TestConfig(
        hypothesis=Hypothesis.non_inferiority(0.3, higher_is_better=True, relative=False)
    )
    c = compare(MeanStats.from_values(a), MeanStats.from_values(b), cfg)
    ref = stats.ttest_ind(b, a - 0.3, equal_var=False, alternative="greater")
    assert c.p_value == pytest.approx(ref.pvalue, **TOL)
    assert c.significant == (ref.pvalue < 0.05)


def test_fieller_bounds_sit_on_the_test_boundary() -> None:
    a, b = lognormal_arms()
    c = compare(MeanStats.from_values(a), MeanStats.from_values(b))
    q = stats.t.ppf(0.975, c.df)
    for rel in c.rel_ci:
        theta = 1 + rel
        t = (b.mean() - theta * a.mean()) / math.sqrt(
            b.var(ddof=1) / len(b) + theta**2 * a.var(ddof=1) / len(a)
        )
        assert abs(t) == pytest.approx(q, rel=1e-9)
    assert c.rel_lift == pytest.approx(b.mean() / a.mean() - 1, **TOL)


def _gb_mean(s: MeanStats) -> SampleMeanStatistic:
    return SampleMeanStatistic(n=int(s.n), sum=float(s.sum), sum_squares=float(s.sum_sq))


def _gb_result(stat_a: object, stat_b: object) -> object:
    return TwoSidedTTest(
        stat_a, stat_b, FrequentistConfig(difference_type="absolute")
    ).compute_result()


def test_mean_matches_gbstats() -> None:
    c_s, t_s = mean_pair()
    ref = _gb_result(_gb_mean(c_s), _gb_mean(t_s))
    c = compare(c_s, t_s)
    assert c.p_value == pytest.approx(ref.p_value, **TOL)  # type: ignore[attr-defined]
    assert c.diff_ci == pytest.approx(tuple(ref.ci), **TOL)  # type: ignore[attr-defined]


def _gb_ratio(s: RatioStats) -> RatioStatistic:
    n = int(s.n)
    return RatioStatistic(
        n=n,
        m_statistic=SampleMeanStatistic(n=n, sum=float(s.sum_num), sum_squares=float(s.sum_num_sq)),
        d_statistic=SampleMeanStatistic(n=n, sum=float(s.sum_den), sum_squares=float(s.sum_den_sq)),
        m_d_sum_of_products=float(s.sum_num_den),
    )


def test_delta_method_ratio_matches_gbstats() -> None:
    c_s, t_s = ratio_pair()
    gb_a, gb_b = _gb_ratio(c_s), _gb_ratio(t_s)
    ref = _gb_result(gb_a, gb_b)
    c = compare(c_s, t_s)
    assert c.control.mean == pytest.approx(gb_a.mean, **TOL)
    assert c.control.se**2 == pytest.approx(gb_a.variance / gb_a.n, **TOL)
    assert c.p_value == pytest.approx(ref.p_value, **TOL)  # type: ignore[attr-defined]
    assert c.diff_ci == pytest.approx(tuple(ref.ci), **TOL)  # type: ignore[attr-defined]


def test_ratio_delta_variance_matches_linearisation() -> None:
    """Var(Σx/Σd) = Var(x − r·d)/(n·d̄²) from raw per-unit data (Deng et al. 2018)."""
    rng = np.random.default_rng(3)
    num, den = rng.gamma(3.0, 2.0, 300), rng.poisson(3.0, 300) + 1.0
    s = RatioStats.from_values(num, den)
    r = num.sum() / den.sum()
    linear = (num - r * den).var(ddof=1) / (len(num) * den.mean() ** 2)
    assert float(s.ratio_variance) == pytest.approx(linear, rel=1e-9)


def _gb_cuped(s: CupedStats) -> RegressionAdjustedStatistic:
    n = int(s.n)
    return RegressionAdjustedStatistic(
        n=n,
        post_statistic=SampleMeanStatistic(n=n, sum=float(s.sum), sum_squares=float(s.sum_sq)),
        pre_statistic=SampleMeanStatistic(n=n, sum=float(s.sum_x), sum_squares=float(s.sum_x_sq)),
        post_pre_sum_of_products=float(s.sum_xy),
        theta=0.0,
    )


def test_cuped_matches_gbstats_regression_adjustment() -> None:
    c_s, t_s = cuped_pair()
    ref = _gb_result(_gb_cuped(c_s), _gb_cuped(t_s))
    c = compare(c_s, t_s)
    assert c.kind == "cuped"
    assert c.diff == pytest.approx(ref.expected, **TOL)  # type: ignore[attr-defined]
    assert c.p_value == pytest.approx(ref.p_value, **TOL)  # type: ignore[attr-defined]
    assert c.diff_ci == pytest.approx(tuple(ref.ci), **TOL)  # type: ignore[attr-defined]


def test_cuped_shrinks_the_standard_error_and_keeps_unadjusted_arms() -> None:
    (y_c, x_c), (y_t, x_t) = cuped_data()
    adjusted = compare(CupedStats.from_values(y_c, x_c), CupedStats.from_values(y_t, x_t))
    plain = compare(MeanStats.from_values(y_c), MeanStats.from_values(y_t))
    assert adjusted.diff_se < 0.7 * plain.diff_se
    # Same summary up to rounding (MeanStats.from_values keeps a two-pass central sum).
    a, b = adjusted.control, plain.control
    assert (a.n, a.mean) == (b.n, b.mean)
    assert (a.sd, a.se, *a.ci) == pytest.approx((b.sd, b.se, *b.ci), rel=1e-12)
    # θ from the pooled sample: the adjusted diff equals the diff of y − θx.
    x, y = np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t])
    theta = np.cov(x, y, ddof=1)[0, 1] / x.var(ddof=1)
    manual = (y_t - theta * x_t).mean() - (y_c - theta * x_c).mean()
    assert adjusted.diff == pytest.approx(manual, **TOL)


def test_cuped_without_covariate_variance_is_plain_welch() -> None:
    a, b = lognormal_arms()
    zeros_a, zeros_b = np.zeros_like(a), np.zeros_like(b)
    c = compare(CupedStats.from_values(a, zeros_a), CupedStats.from_values(b, zeros_b))
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert c.p_value == pytest.approx(ref.pvalue, **TOL)


def test_fieller_is_unbounded_when_the_control_mean_is_not_distinguishable_from_zero() -> None:
    c = compare(MeanStats(n=5, sum=5.0, sum_sq=9.0), MeanStats(n=5, sum=15.0, sum_sq=49.0))
    assert c.error is None
    assert c.rel_ci == (-math.inf, math.inf)
    assert c.as_dict()["rel_ci"] == [None, None]


@st.composite
def _mean_pairs(draw: st.DrawFn) -> tuple[MeanStats, MeanStats]:
    def arm() -> MeanStats:
        n = draw(st.integers(5, 5000))
        mean = draw(st.floats(0.5, 50.0))
        sd = draw(st.floats(0.05, 30.0))
        return MeanStats(n=n, sum=n * mean, sum_sq=(n - 1) * sd * sd + n * mean * mean)

    return arm(), arm()


@settings(max_examples=200, deadline=None)
@given(_mean_pairs(), st.sampled_from(["two-sided", "greater", "less"]))
def test_relative_ci_is_consistent_with_the_p_value(
    pair: tuple[MeanStats, MeanStats], alternative: str
) -> None:
    cfg = TestConfig(hypothesis=Hypothesis(alternative))  # type: ignore[arg-type]
    c = compare(pair[0], pair[1], cfg)
    assert c.error is None
    if abs(c.p_value - 0.05) < 1e-9:
        return
    lo, hi = c.rel_ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        # Control mean indistinguishable from 0: Fieller's set is unbounded (documented).
        return
    if alternative == "two-sided":
        excluded = not lo <= 0 <= hi
    elif alternative == "greater":
        excluded = lo > 0
    else:
        excluded = hi < 0
    assert excluded == (c.p_value < 0.05)
    assert (not c.diff_ci[0] <= 0 <= c.diff_ci[1]) == excluded or alternative != "two-sided"


@pytest.mark.parametrize(("alternative", "margin"), [("less", 0.10), ("greater", -0.05)])
def test_relative_ci_is_dual_to_a_relative_margin_test(alternative: str, margin: float) -> None:
    from abllm.stats import ProportionStats

    hyp = Hypothesis(alternative, margin, relative=True)  # type: ignore[arg-type]
    rng = np.random.default_rng(12)
    for _ in range(60):
        n_c, n_t = rng.integers(200, 5000, 2)
        mean_c, mean_t = rng.uniform(2, 4), rng.uniform(2, 4.4)
        sd = rng.uniform(0.5, 3)
        arms = [
            MeanStats(n, n * m, (n - 1) * sd * sd + n * m * m)
            for n, m in ((n_c, mean_c), (n_t, mean_t))
        ]
        rate_c, rate_t = rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.22)
        props = [
            ProportionStats(n_c, round(n_c * rate_c)),
            ProportionStats(n_t, round(n_t * rate_t)),
        ]
        for pair in (arms, props):
            c = compare(pair[0], pair[1], TestConfig(hypothesis=hyp))  # type: ignore[type-var]
            bound = c.rel_ci[1] < margin if alternative == "less" else c.rel_ci[0] > margin
            assert bound == (c.p_value < 0.05), c
