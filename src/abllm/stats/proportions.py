"""Two-proportion inference: score tests, Wilson/Newcombe and Koopman intervals, k-arm χ².

Conventions follow statsmodels with group 1 = treatment and group 0 = control, and the score
tests use no small-sample ``N/(N−1)`` correction, so that at "no difference" the test is the
classic pooled two-proportion z-test (``statsmodels.stats.proportion.proportions_ztest``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from abllm.errors import ValidationError
from abllm.stats._types import FloatArray, Value, arr
from abllm.stats.summaries import ProportionStats


def wilson_interval(successes: Value, n: Value, q: Value) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for one proportion at multiplier ``q`` (Wilson 1927)."""
    s, n_, q2 = arr(successes), arr(n), arr(q) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / n_
        denom = 1.0 + q2 / n_
        center = (p + q2 / (2.0 * n_)) / denom
        half = np.sqrt(q2) * np.sqrt(p * (1.0 - p) / n_ + q2 / (4.0 * n_**2)) / denom
    lower: FloatArray = center - half
    upper: FloatArray = center + half
    return lower, upper


def newcombe_interval(
    s_t: Value, n_t: Value, s_c: Value, n_c: Value, q: Value
) -> tuple[FloatArray, FloatArray]:
    """Newcombe's hybrid score interval for p_t − p_c (Newcombe 1998, method 10).

    Built from the two Wilson intervals; matches statsmodels'
    ``confint_proportions_2indep(method="newcomb")``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        pt, pc = arr(s_t) / arr(n_t), arr(s_c) / arr(n_c)
    lt, ut = wilson_interval(s_t, n_t, q)
    lc, uc = wilson_interval(s_c, n_c, q)
    diff = pt - pc
    lower = diff - np.sqrt((pt - lt) ** 2 + (uc - pc) ** 2)
    upper = diff + np.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)
    return lower, upper


def score_statistic(
    s_t: Value, n_t: Value, s_c: Value, n_c: Value, null: float, relative: bool
) -> FloatArray:
    """Score z statistic for H0: p_t − p_c = null, or p_t / p_c = null when ``relative``.

    The variance is evaluated at the maximum-likelihood proportions restricted to H0
    (Miettinen & Nurminen 1985; Farrington & Manning 1990) — the pooled proportion when the
    null is "no difference", which gives the pooled two-proportion z-test.
    """
    x1, n1, x0, n0 = arr(s_t), arr(n_t), arr(s_c), arr(n_c)
    n, x = n1 + n0, x1 + x0
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p0 = x1 / n1, x0 / n0
        if relative:
            ratio = null
            if ratio == 1.0:
                r0 = r1 = x / n
            else:
                a = n * ratio
                b = -(n1 * ratio + x1 + n0 + x0 * ratio)
                r0 = (-b - np.sqrt(b * b - 4.0 * a * x)) / (2.0 * a)
                r1 = r0 * ratio
            var = r1 * (1.0 - r1) / n1 + ratio**2 * r0 * (1.0 - r0) / n0
            z_ratio: FloatArray = (p1 - ratio * p0) / np.sqrt(var)
            return z_ratio
        delta = null
        if delta == 0.0:
            r0 = r1 = x / n
        else:
            # restricted MLE: root of a cubic, trigonometric solution (Farrington & Manning 1990)
            t3 = n
            t2 = (n1 + 2.0 * n0) * delta - n - x
            t1 = (x0 * delta - n - 2.0 * x0) * delta + x
            t0 = x0 * delta * (1.0 - delta)
            v = (t2 / (3.0 * t3)) ** 3 - t1 * t2 / (6.0 * t3**2) + t0 / (2.0 * t3)
            u = np.sign(v) * np.sqrt((t2 / (3.0 * t3)) ** 2 - t1 / (3.0 * t3))
            w = (np.pi + np.arccos(np.clip(v / u**3, -1.0, 1.0))) / 3.0
            r0 = 2.0 * u * np.cos(w) - t2 / (3.0 * t3)
            r1 = r0 + delta
        var = r1 * (1.0 - r1) / n1 + r0 * (1.0 - r0) / n0
        z_diff: FloatArray = (p1 - p0 - delta) / np.sqrt(var)
        return z_diff


def koopman_ratio_interval(
    s_t: Value, n_t: Value, s_c: Value, n_c: Value, q: Value
) -> tuple[FloatArray, FloatArray]:
    """Score interval for p_t / p_c (Koopman 1984), closed form via Nam's cubic (Nam 1995).

    It inverts the same score test as :func:`score_statistic` with ``relative=True``, so it
    contains 1 exactly when the pooled z-test does not reject. Matches statsmodels'
    ``confint_proportions_2indep(compare="ratio", method="score", correction=False)``.
    Nam's closed form picks the wrong roots when a rate sits at 0 % or 100 % (statsmodels has
    the same defect: for 95/100 against 100/100 it returns (0.975, 0.987), which excludes the
    point estimate 0.95); those rows are solved by inverting the score test numerically
    (:func:`_score_inversion`). A control at 0 successes gives a finite lower bound and +inf;
    a treatment at 0 gives a lower bound of 0; both at 0 give NaN.
    """
    x1, n1, x0, n0, z = np.broadcast_arrays(arr(s_t), arr(n_t), arr(s_c), arr(n_c), arr(q) ** 2)
    x, n = x0 + x1, n0 + n1
    a1 = n0 * (n0 * n * x1 + n1 * (n0 + x1) * z)
    a2 = -n0 * (n0 * n1 * x + 2.0 * n * x0 * x1 + n1 * (n0 + x0 + 2.0 * x1) * z)
    a3 = 2.0 * n0 * n1 * x0 * x + n * x0 * x0 * x1 + n0 * n1 * x * z
    a4 = -n1 * x0 * x0 * x
    flat = [c.reshape(-1) for c in (a1, a2, a3, a4)]
    ok = (flat[0] != 0) & (flat[3] != 0) & np.all(np.isfinite(np.stack(flat)), axis=0)
    lower = np.full(flat[0].shape, np.nan)
    upper = np.full(flat[0].shape, np.nan)
    if ok.any():
        lead = flat[0][ok]
        roots = _cubic_roots(flat[1][ok] / lead, flat[2][ok] / lead, flat[3][ok] / lead)
        p_hi, p_lo = roots[:, 1], roots[:, 0]  # the two smallest roots, as in Nam (1995)
        x1k, n1k, x0k, nk = (v.reshape(-1)[ok] for v in (x1, n1, x0, n))
        with np.errstate(divide="ignore", invalid="ignore"):
            lower[ok] = (1.0 - (n1k - x1k) * (1.0 - p_hi) / (x0k + n1k - nk * p_hi)) / p_hi
            upper[ok] = (1.0 - (n1k - x1k) * (1.0 - p_lo) / (x0k + n1k - nk * p_lo)) / p_lo
    fx1, fn1, fx0, fn0, fz = (v.reshape(-1) for v in (x1, n1, x0, n0, z))
    edge = ~ok | (fx1 <= 0) | (fx1 >= fn1) | (fx0 <= 0) | (fx0 >= fn0)
    for i in np.flatnonzero(edge):
        lower[i], upper[i] = _score_inversion(
            float(fx1[i]), float(fn1[i]), float(fx0[i]), float(fn0[i]), math.sqrt(float(fz[i]))
        )
    return lower.reshape(x1.shape), upper.reshape(x1.shape)


def _score_inversion(x1: float, n1: float, x0: float, n0: float, q: float) -> tuple[float, float]:
    """{θ : |z(θ)| ≤ q} for the ratio score statistic, by root finding (Koopman 1984).

    ``z(θ)`` (:func:`score_statistic`, Miettinen–Nurminen restricted MLE) decreases in θ, so
    each end is one root of ``z(θ) = ±q``, bracketed on a log scale from the point estimate.
    """
    if not (n1 > 0 and n0 > 0 and 0 <= x1 <= n1 and 0 <= x0 <= n0 and q > 0) or x0 + x1 == 0:
        return math.nan, math.nan

    def z(log_theta: float) -> float:
        return float(score_statistic(x1, n1, x0, n0, math.exp(log_theta), True))

    # A start inside the interval: the point estimate, or far out when it is 0 or infinite.
    start = math.log((x1 / n1) / (x0 / n0)) if x0 > 0 and x1 > 0 else (-30.0 if x0 > 0 else 30.0)

    def end(target: float, step: float) -> float:
        inside = start
        for _ in range(80):
            outside = inside + step
            if abs(outside) > 700:
                return math.inf if step > 0 else 0.0
            value = z(outside)
            if (value > target) if step < 0 else (value < target):
                root = optimize.brentq(lambda t: z(t) - target, min(inside, outside),
                                       max(inside, outside), xtol=1e-13)  # fmt: skip
                return math.exp(root)
            inside = outside
        return math.inf if step > 0 else 0.0

    try:
        lower = 0.0 if x1 == 0 else end(q, -1.0)
        upper = math.inf if x0 == 0 else end(-q, 1.0)
    except ValueError:  # z undefined at the start (both rates 0 % or 100 %): no interval
        return math.nan, math.nan
    return lower, upper


def _cubic_roots(b: FloatArray, c: FloatArray, d: FloatArray) -> FloatArray:
    """Sorted real roots of x³ + b·x² + c·x + d, one row per cubic.

    Viète's trigonometric solution when all three roots are real (always so for Nam's cubic
    in practice), polished by two Newton steps; any other row falls back to the companion
    matrix eigenvalues (what ``numpy.roots`` does), which is ~50× slower per cubic.
    """
    p = c - b * b / 3.0
    q = 2.0 * b**3 / 27.0 - b * c / 3.0 + d
    three_real = (p < 0) & (4.0 * p**3 + 27.0 * q * q <= 0)
    out = np.empty((b.size, 3))
    if three_real.any():
        pp, qq, bb = p[three_real], q[three_real], b[three_real]
        amp = 2.0 * np.sqrt(-pp / 3.0)
        phi = np.arccos(np.clip(3.0 * qq / (pp * amp), -1.0, 1.0)) / 3.0
        k = np.arange(3) * (2.0 * np.pi / 3.0)
        x = amp[:, None] * np.cos(phi[:, None] - k) - bb[:, None] / 3.0
        cc, dd = c[three_real][:, None], d[three_real][:, None]
        for _ in range(2):
            f = ((x + bb[:, None]) * x + cc) * x + dd
            slope = (3.0 * x + 2.0 * bb[:, None]) * x + cc
            x = np.where(slope != 0, x - f / slope, x)
        out[three_real] = np.sort(x, axis=1)
    rest = ~three_real
    if rest.any():
        companion = np.zeros((int(rest.sum()), 3, 3))
        companion[:, 0, 0], companion[:, 0, 1], companion[:, 0, 2] = -b[rest], -c[rest], -d[rest]
        companion[:, 1, 0] = 1.0
        companion[:, 2, 1] = 1.0
        out[rest] = np.sort(np.linalg.eigvals(companion).real, axis=1)
    return out


@dataclass(frozen=True)
class ChiSquareResult:
    """Pearson χ² test of independence; ``df`` degrees of freedom."""

    statistic: float
    df: int
    p_value: float


def proportions_chi2(arms: Sequence[ProportionStats]) -> ChiSquareResult:
    """Pearson χ² test that all k arms share one conversion rate (2 × k table, k − 1 df).

    Matches ``scipy.stats.chi2_contingency(table, correction=False)``. With a rate of 0 or 1 in
    every arm there is nothing to test and the p-value is 1.
    """
    if len(arms) < 2:
        raise ValidationError(f"proportions_chi2 needs at least 2 arms, got {len(arms)}")
    n = np.array([float(a.n) for a in arms])
    s = np.array([float(a.successes) for a in arms])
    if np.any(n <= 0):
        raise ValidationError("proportions_chi2: every arm needs n > 0")
    pooled = s.sum() / n.sum()
    df = len(arms) - 1
    if pooled in (0.0, 1.0):
        return ChiSquareResult(statistic=0.0, df=df, p_value=1.0)
    expected_s, expected_f = n * pooled, n * (1.0 - pooled)
    stat = float(
        np.sum((s - expected_s) ** 2 / expected_s + (n - s - expected_f) ** 2 / expected_f)
    )
    return ChiSquareResult(statistic=stat, df=df, p_value=float(special.chdtrc(df, stat)))
