"""Two-proportion tests and intervals pinned to statsmodels and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_chisquare,
    proportions_ztest,
)
from statsmodels.stats.proportion import (
    test_proportions_2indep as sm_test_proportions_2indep,
)

from abllm.errors import ValidationError
from abllm.stats import (
    Hypothesis,
    ProportionStats,
    TestConfig,
    compare,
    compare_many,
    proportions_chi2,
)

TOL = dict(rel=1e-9, abs=1e-12)
CASES = [(45, 500, 30, 480), (10, 10, 3, 12), (300, 10000, 250, 9000), (1, 40, 4, 35)]
SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


@pytest.mark.parametrize(("x_t", "n_t", "x_c", "n_c"), CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_p_value_is_proportions_ztest(
    x_t: int, n_t: int, x_c: int, n_c: int, alternative: str
) -> None:
    cfg = TestConfig(hypothesis=Hypothesis(alternative))  # type: ignore[arg-type]
    c = compare(ProportionStats(n_c, x_c), ProportionStats(n_t, x_t), cfg)
    _, ref = proportions_ztest([x_t, x_c], [n_t, n_c], alternative=SM_ALT[alternative])
    assert c.p_value == pytest.approx(ref, **TOL)


@pytest.mark.parametrize(("x_t", "n_t", "x_c", "n_c"), CASES)
def test_intervals_match_statsmodels(x_t: int, n_t: int, x_c: int, n_c: int) -> None:
    c = compare(ProportionStats(n_c, x_c), ProportionStats(n_t, x_t))
    newcombe = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb")
    koopman = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, compare="ratio", method="score", correction=False
    )
    assert c.diff_ci == pytest.approx(newcombe, **TOL)
    assert c.rel_ci == pytest.approx((koopman[0] - 1, koopman[1] - 1), **TOL)
    wilson = proportion_confint(x_c, n_c, method="wilson")
    assert c.control.ci == pytest.approx(wilson, **TOL)


@pytest.mark.filterwarnings(
    "ignore:divide by zero:RuntimeWarning"
)  # statsmodels' odds ratio at p=1
@pytest.mark.parametrize(("x_t", "n_t", "x_c", "n_c"), CASES)
@pytest.mark.parametrize(
    ("alternative", "null", "relative"),
    [
        ("less", 0.02, False),
        ("greater", -0.03, False),
        ("less", 0.10, True),
        ("greater", -0.2, True),
    ],
)
def test_margins_use_the_score_test(
    x_t: int, n_t: int, x_c: int, n_c: int, alternative: str, null: float, relative: bool
) -> None:
    """Non-inferiority margins: Farrington–Manning / Miettinen–Nurminen without correction."""
    hyp = Hypothesis(alternative, null, relative)  # type: ignore[arg-type]
    c = compare(ProportionStats(n_c, x_c), ProportionStats(n_t, x_t), TestConfig(hypothesis=hyp))
    ref = sm_test_proportions_2indep(
        x_t, n_t, x_c, n_c,
        value=1 + null if relative else null,
        compare="ratio" if relative else "diff",
        method="score",
        correction=False,
        alternative=SM_ALT[alternative],
    )  # fmt: skip
    assert c.p_value == pytest.approx(ref.pvalue, **TOL)


def test_error_rate_guardrail_non_inferiority() -> None:
    """'Error rate no more than 10 % worse than control', at 1 % and 5 % levels."""
    hyp = Hypothesis.non_inferiority(0.10, higher_is_better=False)
    ctl, trt = ProportionStats(40000, 800), ProportionStats(40000, 790)
    c = compare(ctl, trt, TestConfig(alpha=0.05, hypothesis=hyp))
    assert c.significant  # 1.975 % vs 2.0 %: clearly not 10 % worse
    worse = compare(ctl, ProportionStats(40000, 900), TestConfig(alpha=0.05, hypothesis=hyp))
    assert not worse.significant  # 2.25 % is 12.5 % worse
    assert worse.rel_ci[1] > 0.10


@settings(max_examples=150, deadline=None)
@given(
    st.integers(20, 3000), st.floats(0.02, 0.6), st.integers(20, 3000), st.floats(0.02, 0.6),
)  # fmt: skip
def test_relative_ci_is_consistent_with_pooled_z(
    n_c: int, p_c: float, n_t: int, p_t: float
) -> None:
    x_c, x_t = max(1, round(n_c * p_c)), round(n_t * p_t)
    c = compare(ProportionStats(n_c, x_c), ProportionStats(n_t, x_t))
    if c.error is not None or abs(c.p_value - 0.05) < 1e-9:
        return
    lo, hi = c.rel_ci
    assert (not lo <= 0 <= hi) == (c.p_value < 0.05)


def test_vectorised_matches_scalar() -> None:
    n_c, x_c = np.array([500.0, 900, 60]), np.array([45.0, 80, 7])
    n_t, x_t = np.array([480.0, 950, 70]), np.array([30.0, 99, 20])
    table = compare_many(ProportionStats(n_c, x_c), ProportionStats(n_t, x_t))
    for i, row in enumerate(table.rows()):
        single = compare(ProportionStats(n_c[i], x_c[i]), ProportionStats(n_t[i], x_t[i]))
        assert row == single


def test_k_arm_chi_square_matches_scipy_and_statsmodels() -> None:
    n, s = [1000, 1100, 950], [100, 131, 90]
    res = proportions_chi2([ProportionStats(a, b) for a, b in zip(n, s, strict=True)])
    table = np.array([s, np.subtract(n, s)])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert (res.statistic, res.p_value, res.df) == (
        pytest.approx(chi2, **TOL),
        pytest.approx(p, **TOL),
        dof,
    )
    sm_stat, sm_p, _ = proportions_chisquare(np.array(s), np.array(n))
    assert res.p_value == pytest.approx(sm_p, **TOL)
    assert res.statistic == pytest.approx(sm_stat, **TOL)


def test_k_arm_chi_square_degenerate_and_invalid() -> None:
    assert proportions_chi2([ProportionStats(10, 0), ProportionStats(12, 0)]).p_value == 1.0
    with pytest.raises(ValidationError, match="at least 2 arms"):
        proportions_chi2([ProportionStats(10, 1)])


def test_zero_successes_in_control_leave_the_point_lift_undefined_not_its_ci() -> None:
    c = compare(ProportionStats(100, 0), ProportionStats(100, 5))
    assert c.error is None
    assert c.p_value < 0.05
    assert math.isnan(c.rel_lift)
    assert c.rel_ci[0] > 0 and c.rel_ci[1] == math.inf  # consistent with p < alpha


def _brute_ratio_interval(xt: int, nt: int, xc: int, nc: int, q: float) -> tuple[float, float]:
    """Koopman's interval by brute force: the θ grid points the score test does not reject."""
    from abllm.stats.proportions import score_statistic

    grid = np.exp(np.linspace(np.log(1e-3), np.log(1e3), 400_001))
    keep = [t for t in grid[::20] if abs(float(score_statistic(xt, nt, xc, nc, t, True))) <= q]
    return min(keep), max(keep)


@pytest.mark.parametrize(
    ("xt", "nt", "xc", "nc"),
    [(95, 100, 100, 100), (100, 100, 95, 100), (0, 100, 5, 100), (3, 40, 40, 40), (37, 50, 12, 50)],
)
def test_relative_ci_at_zero_and_hundred_percent_matches_score_inversion(
    xt: int, nt: int, xc: int, nc: int
) -> None:
    c = compare(ProportionStats(nc, xc), ProportionStats(nt, xt))
    lo, hi = _brute_ratio_interval(xt, nt, xc, nc, float(stats.norm.ppf(0.975)))
    step = np.exp((np.log(1e3) - np.log(1e-3)) / 20_000)  # the grid's spacing (ratio)
    if xt == 0:
        assert c.rel_ci[0] == -1.0  # θ = 0 is never rejected when the treatment has none
    else:
        assert lo / step <= c.rel_ci[0] + 1.0 <= lo * step
    assert hi / step <= c.rel_ci[1] + 1.0 <= hi * step
    assert c.rel_ci[0] <= c.rel_lift <= c.rel_ci[1]


def test_hundred_of_hundred_vs_ninety_five_gives_the_issue_numbers() -> None:
    c = compare(ProportionStats(100, 100), ProportionStats(100, 95))
    assert c.rel_lift == pytest.approx(-0.05)
    assert round(c.rel_ci[0] * 100, 1) == -11.2 and round(c.rel_ci[1] * 100, 1) == -1.3


def test_zero_control_successes_give_a_finite_lower_bound_and_infinity() -> None:
    c = compare(ProportionStats(100, 0), ProportionStats(100, 5))
    lo, _ = _brute_ratio_interval(5, 100, 0, 100, float(stats.norm.ppf(0.975)))
    assert math.isfinite(c.rel_ci[0]) and c.rel_ci[0] + 1.0 == pytest.approx(lo, rel=2e-3)
    assert c.rel_ci[1] == math.inf
