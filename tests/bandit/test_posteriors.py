"""Posteriors against scipy: Beta update, and the NIG update against brute-force integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from abllm.bandit import (
    BetaPosterior,
    BetaPrior,
    NormalInverseGamma,
    StudentTPosterior,
)
from abllm.errors import ValidationError

Y = np.array([4.1, 3.2, 5.0, 4.4, 2.9, 3.8, 4.6])


def test_beta_update_adds_successes_and_failures() -> None:
    post = BetaPosterior.from_counts(n=200, successes=30, prior=BetaPrior(2, 3))
    assert (post.alpha, post.beta) == (32, 173)
    assert post.mean == pytest.approx(32 / 205)
    lo, hi = post.interval(0.9)
    assert (lo, hi) == pytest.approx(tuple(sps.beta.ppf([0.05, 0.95], 32, 173)))


def test_beta_default_prior_is_uniform() -> None:
    assert BetaPosterior.from_counts(0, 0) == BetaPosterior(1.0, 1.0)


@pytest.mark.parametrize(("n", "s"), [(-1, 0), (3, 4), (3, -1), (math.nan, 0)])
def test_beta_rejects_impossible_counts(n: float, s: float) -> None:
    with pytest.raises(ValidationError, match="successes"):
        BetaPosterior.from_counts(n, s)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"kappa0": 0}, "kappa0"), ({"alpha0": -1}, "alpha0"), ({"beta0": 0}, "beta0")],
)
def test_nig_prior_must_be_proper(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        NormalInverseGamma(**kwargs)


def test_nig_marginal_matches_numerical_integration_of_the_joint_posterior() -> None:
    """Integrate σ² out of prior × likelihood numerically; compare with the Student-t."""
    prior = NormalInverseGamma(mu0=3.0, kappa0=2.0, alpha0=1.5, beta0=0.8)
    post = StudentTPosterior.from_stats(Y.size, Y.sum(), (Y * Y).sum(), prior)
    n, ybar, ss = Y.size, Y.mean(), ((Y - Y.mean()) ** 2).sum()

    def joint(var: float, mu: float) -> float:
        # NIG prior density × Gaussian likelihood, up to a constant.
        log = (
            -(prior.alpha0 + 1 + 0.5 + n / 2) * math.log(var)
            - prior.beta0 / var
            - prior.kappa0 * (mu - prior.mu0) ** 2 / (2 * var)
            - (ss + n * (ybar - mu) ** 2) / (2 * var)
        )
        return math.exp(log)

    mus = np.linspace(post.loc - 3 * post.scale, post.loc + 3 * post.scale, 9)
    dens = np.array([integrate.quad(joint, 0, np.inf, args=(m,))[0] for m in mus])
    t = sps.t.pdf(mus, post.df, post.loc, post.scale)
    np.testing.assert_allclose(dens / dens.sum(), t / t.sum(), rtol=1e-6)


def test_nig_update_is_sequentially_consistent() -> None:
    """Updating on all data at once equals two updates (posterior after the first as prior)."""
    prior = NormalInverseGamma(0.0, 1.0, 1.0, 1.0)
    a, b = Y[:3], Y[3:]
    n_a = a.size
    kappa = prior.kappa0 + n_a
    mu = (prior.kappa0 * prior.mu0 + a.sum()) / kappa
    alpha = prior.alpha0 + n_a / 2
    beta = (
        prior.beta0
        + ((a - a.mean()) ** 2).sum() / 2
        + prior.kappa0 * n_a * (a.mean() - prior.mu0) ** 2 / (2 * kappa)
    )
    mid = NormalInverseGamma(mu, kappa, alpha, beta)
    two_step = StudentTPosterior.from_stats(b.size, b.sum(), (b * b).sum(), mid)
    one_step = StudentTPosterior.from_stats(Y.size, Y.sum(), (Y * Y).sum(), prior)
    assert two_step.loc == pytest.approx(one_step.loc)
    assert two_step.scale == pytest.approx(one_step.scale)
    assert two_step.df == pytest.approx(one_step.df)


def test_nig_with_vague_prior_approaches_the_sample_mean_and_se() -> None:
    vague = NormalInverseGamma(0.0, 1e-9, 1e-9, 1e-12)
    post = StudentTPosterior.from_stats(Y.size, Y.sum(), (Y * Y).sum(), vague)
    ss = ((Y - Y.mean()) ** 2).sum()
    assert post.loc == pytest.approx(Y.mean())
    assert post.df == pytest.approx(Y.size)
    assert post.scale == pytest.approx(math.sqrt(ss) / Y.size, rel=1e-6)


def test_no_data_gives_the_prior_marginal() -> None:
    prior = NormalInverseGamma(5.0, 2.0, 3.0, 4.0)
    post = StudentTPosterior.from_stats(0, 0, 0, prior)
    assert (post.loc, post.df) == (5.0, 6.0)
    assert post.scale == pytest.approx(math.sqrt(4.0 / (3.0 * 2.0)))
    lo, hi = post.interval()
    assert (lo, hi) == pytest.approx(tuple(sps.t.ppf([0.025, 0.975], 6.0, 5.0, post.scale)))


def test_unit_information_prior_pools_the_arms() -> None:
    a, b = Y[:4], Y[4:]
    prior = NormalInverseGamma.unit_information(
        [(a.size, a.sum(), (a * a).sum()), (b.size, b.sum(), (b * b).sum())]
    )
    assert prior.mu0 == pytest.approx(Y.mean())
    assert prior.beta0 == pytest.approx(Y.var(ddof=1))
    assert (prior.kappa0, prior.alpha0) == (1.0, 1.0)


@pytest.mark.parametrize("stats", [[], [(0, 0, 0)], [(1, 7.0, 49.0)], [(3, 6.0, 12.0)]])
def test_unit_information_prior_is_proper_without_spread(
    stats: list[tuple[float, float, float]],
) -> None:
    prior = NormalInverseGamma.unit_information(stats)
    assert prior.beta0 > 0
    StudentTPosterior.from_stats(0, 0, 0, prior)  # a proper posterior


def test_samples_follow_the_posterior() -> None:
    rng = np.random.default_rng(3)
    post = StudentTPosterior(loc=2.0, scale=0.5, df=4.0)
    draws = post.sample(rng, 50_000)
    assert sps.kstest(draws, sps.t(4.0, 2.0, 0.5).cdf).pvalue > 0.001
    beta = BetaPosterior(3, 9)
    assert sps.kstest(beta.sample(rng, 50_000), sps.beta(3, 9).cdf).pvalue > 0.001
