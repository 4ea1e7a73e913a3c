"""Pure statistics of an eval run: per-variant means, paired comparisons, drift, pass^k.

Every interval is 95 %. Means: Wilson score interval for 0/1 scorers, Student t otherwise.
Paired comparisons (each row answered by both variants): the paired t-test
(``scipy.stats.ttest_rel``, its ``confidence_interval``) for measurements; for 0/1 scorers the
exact McNemar test — a binomial test on the discordant pairs (McNemar 1947; the form
statsmodels' ``mcnemar(exact=True)`` computes) — with the Wald interval for a difference of
paired proportions (Agresti, *Categorical Data Analysis*, 3rd ed., §11.1). Unpaired drift (the
two runs share no rows) uses Welch's t (``ttest_ind(equal_var=False)``).

Degenerate input does not raise: fewer than two values give ``ci`` None and ``p_value`` None;
differences that are all equal give a zero-width interval and p = 1 (all zero) or 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class ScoreSummary:
    """One variant's scores on one scorer."""

    mean: float | None
    n: int
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class Comparison:
    """``diff`` = treatment − baseline, with its interval and test."""

    diff: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    n: int
    test: str


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def summarize(values: Sequence[float], binary: bool) -> ScoreSummary:
    """Mean, count and 95 % interval of one variant's per-row scores."""
    n = len(values)
    if n == 0:
        return ScoreSummary(None, 0, None)
    mean = float(np.mean(values))
    if n < 2:
        return ScoreSummary(mean, n, None)
    if binary:
        ci = stats.binomtest(round(sum(values)), n).proportion_ci(LEVEL, method="wilson")
        return ScoreSummary(mean, n, (float(ci.low), float(ci.high)))
    sem = float(stats.sem(values))
    if sem == 0.0:
        return ScoreSummary(mean, n, (mean, mean))
    lo, hi = stats.t.interval(LEVEL, n - 1, loc=mean, scale=sem)
    return ScoreSummary(mean, n, (float(lo), float(hi)))


def _constant(diff: float, n: int, test: str) -> Comparison:
    return Comparison(diff, (diff, diff), 1.0 if diff == 0.0 else 0.0, n, test)


def paired(base: Sequence[float], treat: Sequence[float], binary: bool) -> Comparison:
    """Compare two variants on the same rows (``base[i]`` and ``treat[i]`` answer row i)."""
    n = len(base)
    if n != len(treat):
        raise ValueError("paired samples must have the same length")
    test = "mcnemar" if binary else "paired_t"
    if n == 0:
        return Comparison(None, None, None, 0, test)
    a, b = np.asarray(base, dtype=float), np.asarray(treat, dtype=float)
    diff = float(np.mean(b - a))
    if n < 2:
        return Comparison(diff, None, None, n, test)
    if binary:
        gains = int(np.sum((a == 0) & (b == 1)))
        losses = int(np.sum((a == 1) & (b == 0)))
        discordant = gains + losses
        p = float(stats.binomtest(gains, discordant, 0.5).pvalue) if discordant else 1.0
        se = math.sqrt(max(discordant - (gains - losses) ** 2 / n, 0.0)) / n
        z = float(stats.norm.ppf(0.5 + LEVEL / 2))
        return Comparison(diff, (diff - z * se, diff + z * se), p, n, test)
    d = b - a
    if float(np.ptp(d)) == 0.0:
        return _constant(diff, n, test)
    res = stats.ttest_rel(b, a)
    ci = res.confidence_interval(LEVEL)
    return Comparison(diff, (float(ci.low), float(ci.high)), _finite(res.pvalue), n, test)


def unpaired(base: Sequence[float], treat: Sequence[float]) -> Comparison:
    """Welch's t comparison of two independent samples (``mean(treat) - mean(base)``)."""
    n = min(len(base), len(treat))
    if n == 0:
        return Comparison(None, None, None, 0, "welch_t")
    diff = float(np.mean(treat) - np.mean(base))
    if n < 2:
        return Comparison(diff, None, None, n, "welch_t")
    if float(np.var(base)) == 0.0 and float(np.var(treat)) == 0.0:
        return _constant(diff, n, "welch_t")
    res = stats.ttest_ind(treat, base, equal_var=False)
    ci = res.confidence_interval(LEVEL)
    return Comparison(diff, (float(ci.low), float(ci.high)), _finite(res.pvalue), n, "welch_t")


def compare_rows(
    base: Mapping[str, float], treat: Mapping[str, float], binary: bool, *, allow_unpaired: bool
) -> Comparison:
    """Compare per-row scores keyed by row id: paired on the shared rows, or (when they share
    none and ``allow_unpaired``) Welch's t on all of each."""
    shared = [k for k in base if k in treat]
    if shared or not allow_unpaired:
        return paired([base[k] for k in shared], [treat[k] for k in shared], binary)
    return unpaired(list(base.values()), list(treat.values()))


def pass_hat_k(successes: Sequence[int], trials: int, k: int) -> float | None:
    """pass^k: the chance that ``k`` trials of a row all pass, averaged over rows.

    Unbiased per row as C(c, k) / C(n, k) for c successes in n trials (Yao et al. 2024,
    *τ-bench*, eq. 1); with k = n it is the share of rows that passed every trial.
    """
    if not successes or k < 1 or k > trials:
        return None
    total = math.comb(trials, k)
    return sum(math.comb(c, k) / total for c in successes) / len(successes)
