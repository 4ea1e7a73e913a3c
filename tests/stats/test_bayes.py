"""Chance to win and expected loss: Gaussian (gbstats oracle) and Beta-Binomial (exact)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.models.statistics import SampleMeanStatistic
from scipy import integrate, special, stats

from abllm.stats import (
    GaussianPrior,
    ProportionStats,
    TestConfig,
    beta_binomial_bayes,
    compare,
    gaussian_bayes,
)

from ._data import mean_pair

TOL = dict(rel=1e-9, abs=1e-12)


def test_gaussian_matches_gbstats_flat_prior() -> None:
    c_s, t_s = mean_pair()
    gb = lambda s: SampleMeanStatistic(n=int(s.n), sum=float(s.sum), sum_squares=float(s.sum_sq))  # noqa: E731
    res = EffectBayesianABTest(
        gb(c_s), gb(t_s), EffectBayesianConfig(difference_type="absolute")
    ).compute_result()
    c = compare(c_s, t_s)
    assert c.chance_to_win == pytest.approx(res.chance_to_win, **TOL)
    # gbstats' risk = [loss of choosing control, loss of choosing treatment]
    assert c.expected_loss_control == pytest.approx(res.risk[0], rel=1e-9)
    assert c.expected_loss == pytest.approx(res.risk[1], rel=1e-9)


def test_gaussian_direction_and_prior() -> None:
    up = gaussian_bayes(0.2, 0.1)
    down = gaussian_bayes(0.2, 0.1, higher_is_better=False)
    assert float(up.chance_to_win) == pytest.approx(stats.norm.cdf(2.0), **TOL)
    assert float(down.chance_to_win) == pytest.approx(stats.norm.cdf(-2.0), **TOL)
    assert float(up.expected_loss) == pytest.approx(float(down.expected_loss_control), **TOL)
    shrunk = gaussian_bayes(0.2, 0.1, prior=GaussianPrior(0.0, 0.1))
    assert float(shrunk.chance_to_win) == pytest.approx(
        stats.norm.cdf(0.1 / math.sqrt(0.005)), **TOL
    )


def _miller_exact(a_c: float, b_c: float, a_t: float, b_t: float) -> float:
    """P(pT > pC) for integer a_t (Evan Miller 2015, "Formulas for Bayesian A/B Testing")."""
    i = np.arange(int(a_t))
    terms = (
        special.betaln(a_c + i, b_t + b_c)
        - np.log(b_t + i)
        - special.betaln(1 + i, b_t)
        - special.betaln(a_c, b_c)
    )
    return math.fsum(np.exp(terms))


@pytest.mark.parametrize(
    ("s_c", "n_c", "s_t", "n_t"),
    [
        (10, 100, 15, 100),
        (0, 50, 3, 60),
        (100, 1000, 120, 1000),
        (40, 400, 0, 10),
        (1, 1000, 2, 30),
    ],
)
def test_beta_binomial_matches_exact_formula(s_c: int, n_c: int, s_t: int, n_t: int) -> None:
    res = beta_binomial_bayes(s_c, n_c, s_t, n_t)
    exact = _miller_exact(s_c + 1, n_c - s_c + 1, s_t + 1, n_t - s_t + 1)
    assert float(res.chance_to_win) == pytest.approx(exact, rel=1e-9, abs=1e-11)
    # E[max(0, pC − pT)] by adaptive quadrature of the closed-form inner expectation
    a_c, b_c, a_t, b_t = s_c + 1, n_c - s_c + 1, s_t + 1, n_t - s_t + 1

    def inner(x: float) -> float:
        return stats.beta.pdf(x, a_c, b_c) * (
            x * stats.beta.cdf(x, a_t, b_t) - a_t / (a_t + b_t) * stats.beta.cdf(x, a_t + 1, b_t)
        )

    loss, _ = integrate.quad(inner, 0, 1, epsabs=1e-15, epsrel=1e-12, limit=500)
    assert float(res.expected_loss) == pytest.approx(loss, rel=1e-8, abs=1e-14)


def test_beta_binomial_large_counts_agree_with_gaussian() -> None:
    res = beta_binomial_bayes(30000, 100000, 30400, 100000)
    p_c, p_t = 0.3, 0.304
    se = math.sqrt(p_c * (1 - p_c) / 1e5 + p_t * (1 - p_t) / 1e5)
    assert float(res.chance_to_win) == pytest.approx(stats.norm.cdf((p_t - p_c) / se), abs=2e-3)


def test_compare_uses_beta_binomial_when_configured() -> None:
    cfg = TestConfig(bayes="beta_binomial", higher_is_better=False)
    c = compare(ProportionStats(200, 20), ProportionStats(210, 12), cfg)
    exact = 1 - _miller_exact(21, 181, 13, 199)
    assert c.chance_to_win == pytest.approx(exact, rel=1e-9)
