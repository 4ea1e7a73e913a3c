"""Always-valid p-values and confidence sequences (Howard et al. 2021 normal mixtures)."""

from __future__ import annotations

import numpy as np
import pytest
from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import SampleMeanStatistic
from scipy import integrate, stats

from abllm.stats import (
    Hypothesis,
    TestConfig,
    compare,
    sequential_multiplier,
    sequential_p_value,
)

from ._data import mean_pair

TOL = dict(rel=1e-9, abs=1e-12)


def _gb(s: object) -> SampleMeanStatistic:
    return SampleMeanStatistic(n=int(s.n), sum=float(s.sum), sum_squares=float(s.sum_sq))  # type: ignore[attr-defined]


@pytest.mark.parametrize("tuning", [500.0, 5000.0, 50000.0])
def test_two_sided_matches_gbstats_sequential(tuning: float) -> None:
    """Same confidence sequence as GrowthBook (Waudby-Smith et al. 2023, eq. 9)."""
    c_s, t_s = mean_pair()
    gb = SequentialTwoSidedTTest(
        _gb(c_s),
        _gb(t_s),
        SequentialConfig(difference_type="absolute", sequential_tuning_parameter=tuning),
    ).compute_result()
    c = compare(c_s, t_s, TestConfig(sequential_tuning_n=tuning))
    assert c.seq_p_value == pytest.approx(gb.p_value, **TOL)
    assert c.seq_diff_ci == pytest.approx(tuple(gb.ci), **TOL)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_p_value_and_sequence_are_dual(alternative: str) -> None:
    n = np.array([50.0, 800.0, 5000.0, 2e5])
    q = sequential_multiplier(n, alpha=0.05, tuning_n=5000, alternative=alternative)  # type: ignore[arg-type]
    z = q if alternative != "less" else -q
    p = sequential_p_value(z, n, alpha=0.05, tuning_n=5000, alternative=alternative)  # type: ignore[arg-type]
    np.testing.assert_allclose(p, 0.05, rtol=1e-9)
    assert np.all(q > stats.norm.ppf(0.975 if alternative == "two-sided" else 0.95))


def test_one_sided_mixture_matches_its_integral_definition() -> None:
    """M = ∫_{λ≥0} exp(λS − λ²V/2) dF(λ), F = half-normal with variance 1/ρ (Howard et al. 2021)."""
    from abllm.stats.sequential import mixture_rho

    rho = mixture_rho(5000, 0.05, one_sided=True)
    for n, z in [(1000.0, 2.5), (20000.0, 1.0), (300.0, -0.5)]:
        s, v = np.sqrt(n) * z, n

        def integrand(lam: float, s: float = s, v: float = v) -> float:
            return (
                2
                * stats.norm.pdf(lam, scale=1 / np.sqrt(rho))
                * np.exp(lam * s - lam * lam * v / 2)
            )

        m, _ = integrate.quad(integrand, 0, np.inf, epsabs=1e-13, epsrel=1e-11)
        p = sequential_p_value(z, n, alpha=0.05, tuning_n=5000, alternative="greater")
        assert float(p) == pytest.approx(min(1.0, 1 / m), rel=1e-8)


def test_sequential_is_wider_but_agrees_in_direction() -> None:
    c_s, t_s = mean_pair()
    c = compare(c_s, t_s, TestConfig(sequential=True))
    assert c.seq_p_value >= c.p_value
    assert c.seq_diff_ci[0] < c.diff_ci[0] < c.diff_ci[1] < c.seq_diff_ci[1]
    assert c.adjusted_p_value == c.seq_p_value == c.decision_p_value
    # relative sequence by Fieller at the sequence's multiplier: excludes 0 iff seq p < alpha
    lo, hi = c.seq_rel_ci
    assert (not lo <= 0 <= hi) == (c.seq_p_value < 0.05)


def test_one_sided_sequential_guardrail() -> None:
    """A clear breach is detected; a harmless change is not."""
    from abllm.stats import ProportionStats

    breach = Hypothesis("greater", null=0.10, relative=True)
    cfg = TestConfig(alpha=0.01, sequential=True, hypothesis=breach)
    ctl = ProportionStats(20000, 400)
    bad = compare(ctl, ProportionStats(20000, 560), cfg)  # +40 % errors
    fine = compare(ctl, ProportionStats(20000, 410), cfg)
    assert bad.significant and not fine.significant
    assert bad.seq_rel_ci[0] > 0.10
