"""Priors and posteriors of one arm's mean reward, built from sufficient statistics.

Two conjugate models, as in Thompson sampling's standard treatments (Chapelle & Li 2011, "An
Empirical Evaluation of Thompson Sampling", NeurIPS; Russo, Van Roy, Kazerouni, Osband & Wen
2018, "A Tutorial on Thompson Sampling", Found. Trends ML 11(1), §3 and §4):

* **Bernoulli** rewards (thumbs up, task completed, converted): a ``Beta(α, β)`` prior on the
  success rate updated by ``n`` trials with ``s`` successes is ``Beta(α + s, β + n − s)``
  (Russo et al. 2018, eq. 3.2). Default prior Beta(1, 1), uniform, as in seed 000.
* **Gaussian** rewards (rating, edit distance, cost): mean μ and variance σ² both unknown, with
  the conjugate normal-inverse-gamma prior NIG(μ0, κ0, α0, β0). After ``n`` observations with
  mean ȳ and centred sum of squares SS = Σy² − (Σy)²/n (Murphy 2007, "Conjugate Bayesian
  analysis of the Gaussian distribution", §6, eqs. 86–89; Gelman et al., BDA3 §3.3)::

      κn = κ0 + n            μn = (κ0 μ0 + n ȳ) / κn
      αn = α0 + n/2          βn = β0 + SS/2 + κ0 n (ȳ − μ0)² / (2 κn)

  and the marginal posterior of the mean is Student-t with 2αn degrees of freedom, location μn
  and scale √(βn / (αn κn)) (Murphy 2007, eq. 90). Unlike a known-variance approximation this
  stays honest for arms with few units, where the variance itself is uncertain.

Everything here is pure: no I/O, numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import stats as sps

from abllm.errors import ValidationError
from abllm.stats._types import FloatArray


class Posterior(Protocol):
    """What Thompson sampling needs of an arm's posterior over its mean reward.

    Example::

        post = BetaPosterior.from_counts(n=200, successes=30)
        post.sample(np.random.default_rng(0), 3)   # three draws of the success rate
    """

    @property
    def mean(self) -> float:
        """Posterior mean of the arm's mean reward."""
        ...

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` independent draws of the arm's mean reward."""
        ...

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval for the arm's mean reward."""
        ...


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(f"{name} must be a finite number > 0, got {value}")


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValidationError(f"interval level must be in (0, 1), got {level}")


@dataclass(frozen=True)
class BetaPrior:
    """Beta(alpha, beta) prior on a success rate; Beta(1, 1) is uniform."""

    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        _positive("prior.alpha", self.alpha)
        _positive("prior.beta", self.beta)


@dataclass(frozen=True)
class BetaPosterior:
    """Beta posterior of a Bernoulli arm's success rate."""

    alpha: float
    beta: float

    def __post_init__(self) -> None:
        _positive("posterior alpha", self.alpha)
        _positive("posterior beta", self.beta)

    @classmethod
    def from_counts(
        cls, n: float, successes: float, prior: BetaPrior | None = None
    ) -> BetaPosterior:
        """Beta(α + s, β + n − s) (Russo et al. 2018, eq. 3.2); counts may be fractional."""
        p = prior or BetaPrior()
        if not (math.isfinite(n) and math.isfinite(successes) and 0 <= successes <= n):
            raise ValidationError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
        return cls(p.alpha + successes, p.beta + n - successes)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.beta(self.alpha, self.beta, size)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        _check_level(level)
        lo, hi = sps.beta.ppf([(1 - level) / 2, (1 + level) / 2], self.alpha, self.beta)
        return float(lo), float(hi)


@dataclass(frozen=True)
class NormalInverseGamma:
    """NIG(mu0, kappa0, alpha0, beta0) prior on a Gaussian arm's (mean, variance).

    ``kappa0`` is the prior's worth in observations for the mean, ``alpha0``/``beta0`` the
    inverse-gamma shape and scale of the variance (prior mean of σ² is beta0/(alpha0 − 1) when
    alpha0 > 1). All must be > 0 so that an arm without data still has a proper posterior.
    """

    mu0: float = 0.0
    kappa0: float = 1.0
    alpha0: float = 1.0
    beta0: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.mu0):
            raise ValidationError(f"prior.mu0 must be finite, got {self.mu0}")
        _positive("prior.kappa0", self.kappa0)
        _positive("prior.alpha0", self.alpha0)
        _positive("prior.beta0", self.beta0)

    @classmethod
    def unit_information(cls, stats: Iterable[tuple[float, float, float]]) -> NormalInverseGamma:
        """An empirical-Bayes default worth one observation, centred on the pooled data.

        ``stats`` are the arms' ``(n, sum, sum_sq)``. The prior mean is the pooled mean and the
        marginal prior of each arm's mean is t₂(pooled mean, pooled sd): it shrinks an arm's
        estimate toward the others by one pseudo-unit (the "unit-information" idea of Kass &
        Wasserman 1995) and needs no knowledge of the metric's scale. Every arm shares it, so
        no arm is favoured. Without two pooled values the scale falls back to 1.
        """
        n = total = total_sq = 0.0
        for ni, si, ssi in stats:
            n, total, total_sq = n + ni, total + si, total_sq + ssi
        mu0 = total / n if n > 0 else 0.0
        var = (total_sq - total * total / n) / (n - 1) if n >= 2 else 0.0
        if not (math.isfinite(var) and var > 0):
            # Constant data: any small positive scale keeps the posterior proper.
            var = 1.0 if n < 2 else max(1e-12, 1e-12 * mu0 * mu0)
        return cls(mu0=mu0, kappa0=1.0, alpha0=1.0, beta0=var)


@dataclass(frozen=True)
class StudentTPosterior:
    """Student-t marginal posterior of a Gaussian arm's mean (NIG model, Murphy 2007 eq. 90)."""

    loc: float
    scale: float
    df: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.loc):
            raise ValidationError(f"posterior loc must be finite, got {self.loc}")
        _positive("posterior scale", self.scale)
        _positive("posterior df", self.df)

    @classmethod
    def from_stats(
        cls, n: float, total: float, total_sq: float, prior: NormalInverseGamma
    ) -> StudentTPosterior:
        """Posterior after ``n`` values with Σy = ``total`` and Σy² = ``total_sq``.

        The NIG update of the module docstring (Murphy 2007, eqs. 86–89).
        """
        if not (math.isfinite(n) and n >= 0):
            raise ValidationError(f"n must be a finite number >= 0, got {n}")
        if not (math.isfinite(total) and math.isfinite(total_sq)):
            raise ValidationError("sum and sum_sq must be finite")
        kappa_n = prior.kappa0 + n
        alpha_n = prior.alpha0 + n / 2.0
        if n > 0:
            ybar = total / n
            ss = max(total_sq - total * ybar, 0.0)  # clip rounding below zero
            mu_n = (prior.kappa0 * prior.mu0 + total) / kappa_n
            shift = prior.kappa0 * n * (ybar - prior.mu0) ** 2 / (2.0 * kappa_n)
            beta_n = prior.beta0 + ss / 2.0 + shift
        else:
            mu_n, beta_n = prior.mu0, prior.beta0
        return cls(loc=mu_n, scale=math.sqrt(beta_n / (alpha_n * kappa_n)), df=2.0 * alpha_n)

    @property
    def mean(self) -> float:
        return self.loc

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return self.loc + self.scale * rng.standard_t(self.df, size)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        _check_level(level)
        lo, hi = sps.t.ppf([(1 - level) / 2, (1 + level) / 2], self.df, self.loc, self.scale)
        return float(lo), float(hi)
