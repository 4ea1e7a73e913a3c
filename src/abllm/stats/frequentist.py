"""Fixed-horizon building blocks: Welch df, p-values, critical values and Fieller intervals.

All functions are vectorised (numpy broadcasting) and use scipy's special functions, which is
what ``scipy.stats.t``/``norm`` call underneath, without their per-call overhead. An infinite
``df`` means the normal distribution.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from abllm.stats._types import Alternative, FloatArray, Value, arr


def welch_df(var_t: Value, df_t: Value, var_c: Value, df_c: Value) -> FloatArray:
    """Welch–Satterthwaite degrees of freedom of ``est_t − est_c``.

    ``var_*`` are the variances of the two estimates (σ²/n) and ``df_*`` their own degrees of
    freedom (n − 1): ν = (v_t + v_c)² / (v_t²/ν_t + v_c²/ν_c)  (Welch 1947; Satterthwaite 1946).
    """
    vt, vc = arr(var_t), arr(var_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (vt + vc) ** 2 / (vt**2 / arr(df_t) + vc**2 / arr(df_c))


def p_value(stat: Value, df: Value, alternative: Alternative) -> FloatArray:
    """p-value of a t (finite ``df``) or z (``df = inf``) statistic.

    ``greater``: P(T ≥ stat); ``less``: P(T ≤ stat); two-sided: 2·P(T ≥ |stat|).
    """
    s, d = arr(stat), arr(df)
    if alternative == "greater":
        return np.asarray(special.stdtr(d, -s), dtype=np.float64)
    if alternative == "less":
        return np.asarray(special.stdtr(d, s), dtype=np.float64)
    return np.asarray(2.0 * special.stdtr(d, -np.abs(s)), dtype=np.float64)


def critical_value(alpha: float, df: Value, alternative: Alternative) -> FloatArray:
    """Multiplier of the standard error for the interval that matches the test.

    Two-sided: t_{1−α/2}. One-sided: t_{1−α}, i.e. the two-sided ``1 − 2α`` interval whose
    relevant end is the one-sided ``1 − α`` confidence bound.
    """
    level = 1.0 - alpha / 2.0 if alternative == "two-sided" else 1.0 - alpha
    return np.asarray(special.stdtrit(arr(df), level), dtype=np.float64)


def fieller_interval(
    est_t: Value, est_c: Value, var_t: Value, var_c: Value, q: Value
) -> tuple[FloatArray, FloatArray]:
    """Fieller's interval for θ = μT/μC from independent estimates (Fieller 1954).

    The interval is {θ : (est_t − θ·est_c)² ≤ q²(var_t + θ²·var_c)}, the set of ratios the
    test of ``μT − θμC = 0`` does not reject. At θ = 1 that test *is* the difference test, so
    "1 ∈ interval" ⇔ "p ≥ alpha" exactly: the relative CI is consistent with the p-value, which
    a delta-method interval for the ratio is not. When the control mean is not itself
    distinguishable from 0 (a ≤ 0 below) Fieller's set is unbounded (the whole line, or two
    rays) and (−inf, inf) is returned; only then can the p-value reject while the reported
    relative interval does not — a relative lift over such a baseline means nothing anyway.
    """
    mt, mc, vt, vc, q2 = arr(est_t), arr(est_c), arr(var_t), arr(var_c), arr(q) ** 2
    a = mc * mc - q2 * vc
    b = mt * mc
    disc = q2 * (vt * a + vc * mt * mt)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(np.maximum(disc, 0.0))
        lo = (b - root) / a
        hi = (b + root) / a
    bounded = a > 0
    return np.where(bounded, lo, -np.inf), np.where(bounded, hi, np.inf)
