"""Per-kind estimators: from two arms' sufficient statistics to estimates and variances.

Each estimator returns an :class:`Estimates` of arrays; :mod:`abllm.stats.compare` turns it into
tests and intervals the same way for every kind, which is why all kinds share one definition
of the p-value, the Fieller relative interval, the sequential and the Bayesian results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from abllm.stats._types import FloatArray, arr
from abllm.stats.proportions import wilson_interval
from abllm.stats.results import ArmColumns, ErrorCode, MetricKind
from abllm.stats.summaries import (
    CupedStats,
    MeanStats,
    ProportionStats,
    RatioStats,
    covariance_of,
    mean_of,
    ratio_variance,
    variance_of,
)

_CODE = {code: np.int8(i + 1) for i, code in enumerate(ErrorCode)}


@dataclass(frozen=True)
class Estimates:
    """Arrays for both arms of many comparisons.

    ``est_*`` are the estimates compared (CUPED-adjusted where relevant), ``var_*`` their
    variances (squared standard errors), ``dof_*`` their degrees of freedom (inf for normal
    approximations). ``control``/``treatment`` are the summaries shown to users.
    """

    kind: MetricKind
    control: ArmColumns
    treatment: ArmColumns
    est_c: FloatArray
    est_t: FloatArray
    var_c: FloatArray
    var_t: FloatArray
    dof_c: FloatArray
    dof_t: FloatArray
    error_code: npt.NDArray[np.int8]


def first_error(
    shape: tuple[int, ...], checks: list[tuple[ErrorCode, npt.NDArray[np.bool_]]]
) -> npt.NDArray[np.int8]:
    """Code of the first failing check per element (0 when none fails)."""
    out = np.zeros(shape, dtype=np.int8)
    for code, failed in reversed(checks):
        out = np.where(failed, _CODE[code], out)
    return out


def _arm_t(
    n: FloatArray, mean: FloatArray, sd: FloatArray, se: FloatArray, alpha: float
) -> ArmColumns:
    # Arms share unit counts across metrics: invert the t CDF once per distinct df.
    df, inverse = np.unique(n - 1.0, return_inverse=True)
    with np.errstate(invalid="ignore"):
        q = special.stdtrit(df, 1.0 - alpha / 2.0)[inverse].reshape(np.shape(n))
    return ArmColumns(n, mean, sd, se, mean - q * se, mean + q * se)


def _unit_checks(n_c: FloatArray, n_t: FloatArray) -> list[tuple[ErrorCode, npt.NDArray[np.bool_]]]:
    return [
        (ErrorCode.EMPTY_ARM, (n_c <= 0) | (n_t <= 0)),
        (ErrorCode.TOO_FEW_UNITS, (n_c < 2) | (n_t < 2)),
    ]


def mean_estimates(c: MeanStats, t: MeanStats, alpha: float) -> Estimates:
    """Plain per-unit means; Var(ȳ) = s²/n with s² the unbiased sample variance."""
    n_c, n_t = np.broadcast_arrays(arr(c.n), arr(t.n))
    m_c, m_t = c.mean, t.mean
    v_c, v_t = c.variance, t.variance
    with np.errstate(divide="ignore", invalid="ignore"):
        var_c, var_t = v_c / n_c, v_t / n_t
    sd_c, sd_t = np.sqrt(v_c), np.sqrt(v_t)
    shape = np.broadcast_shapes(m_c.shape, m_t.shape, n_c.shape)
    checks = [*_unit_checks(n_c, n_t), (ErrorCode.ZERO_VARIANCE, ~(var_c + var_t > 0))]
    return Estimates(
        "mean",
        _arm_t(n_c, m_c, sd_c, np.sqrt(var_c), alpha),
        _arm_t(n_t, m_t, sd_t, np.sqrt(var_t), alpha),
        m_c,
        m_t,
        var_c,
        var_t,
        n_c - 1.0,
        n_t - 1.0,
        first_error(shape, checks),
    )


def proportion_estimates(c: ProportionStats, t: ProportionStats, alpha: float) -> Estimates:
    """Rates with the unpooled variance p(1−p)/n; tests use the score variance instead."""
    n_c, n_t = np.broadcast_arrays(arr(c.n), arr(t.n))
    s_c, s_t = arr(c.successes), arr(t.successes)
    p_c, p_t = c.rate, t.rate
    with np.errstate(divide="ignore", invalid="ignore"):
        var_c, var_t = p_c * (1.0 - p_c) / n_c, p_t * (1.0 - p_t) / n_t
        pooled = (s_c + s_t) / (n_c + n_t)
    q = float(special.ndtri(1.0 - alpha / 2.0))
    lo_c, hi_c = wilson_interval(s_c, n_c, q)
    lo_t, hi_t = wilson_interval(s_t, n_t, q)
    shape = np.broadcast_shapes(p_c.shape, p_t.shape, n_c.shape)
    checks = [
        *_unit_checks(n_c, n_t),
        (ErrorCode.ZERO_VARIANCE, ~((pooled > 0) & (pooled < 1))),
    ]
    inf = np.full(shape, np.inf)
    return Estimates(
        "proportion",
        ArmColumns(n_c, p_c, np.sqrt(p_c * (1 - p_c)), np.sqrt(var_c), lo_c, hi_c),
        ArmColumns(n_t, p_t, np.sqrt(p_t * (1 - p_t)), np.sqrt(var_t), lo_t, hi_t),
        p_c,
        p_t,
        var_c,
        var_t,
        inf,
        inf,
        first_error(shape, checks),
    )


def ratio_estimates(c: RatioStats, t: RatioStats, alpha: float) -> Estimates:
    """Σnum/Σden per arm with delta-method variances over units (Deng et al. 2018)."""
    n_c, n_t = np.broadcast_arrays(arr(c.n), arr(t.n))
    r_c, r_t = c.ratio, t.ratio
    var_c, var_t = ratio_variance(c), ratio_variance(t)
    # The linearised per-unit sd, so that se = sd / √n as for plain means.
    sd_c, sd_t = np.sqrt(var_c * n_c), np.sqrt(var_t * n_t)
    shape = np.broadcast_shapes(r_c.shape, r_t.shape, n_c.shape)
    checks = [
        *_unit_checks(n_c, n_t),
        (ErrorCode.ZERO_DENOMINATOR, (arr(c.sum_den) == 0) | (arr(t.sum_den) == 0)),
        (ErrorCode.ZERO_VARIANCE, ~(var_c + var_t > 0)),
    ]
    return Estimates(
        "ratio",
        _arm_t(n_c, r_c, sd_c, np.sqrt(var_c), alpha),
        _arm_t(n_t, r_t, sd_t, np.sqrt(var_t), alpha),
        r_c,
        r_t,
        var_c,
        var_t,
        n_c - 1.0,
        n_t - 1.0,
        first_error(shape, checks),
    )


def cuped_estimates(c: CupedStats, t: CupedStats, alpha: float) -> Estimates:
    """CUPED: compare ȳ − θ(x̄ − x̄_pooled), θ = Cov(x, y)/Var(x) on the pooled sample.

    Deng, Xu, Kohavi & Walker (2013), eq. 4 and §3.3: θ is estimated once on both arms
    together, and Var(ȳ_adj) = (s²_y + θ² s²_x − 2θ s_xy)/n per arm. Centring on the pooled
    x̄ leaves the difference unchanged and keeps the adjusted control mean on the scale of the
    metric, which the relative lift needs. When x has no variance θ = 0 (plain means).
    The arm summaries shown are the *unadjusted* means, sds and intervals.
    """
    n_c, n_t = np.broadcast_arrays(arr(c.n), arr(t.n))
    n = n_c + n_t
    sx = arr(c.sum_x) + arr(t.sum_x)
    pooled_var_x = variance_of(n, sx, arr(c.sum_x_sq) + arr(t.sum_x_sq))
    pooled_cov = covariance_of(n, sx, arr(c.sum) + arr(t.sum), arr(c.sum_xy) + arr(t.sum_xy))
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(pooled_var_x > 0, pooled_cov / pooled_var_x, 0.0)
        x_bar = sx / n
    theta = np.nan_to_num(theta)

    def adjusted(s: CupedStats, n_arm: FloatArray) -> tuple[FloatArray, FloatArray]:
        vy = variance_of(n_arm, s.sum, s.sum_sq)
        vx = variance_of(n_arm, s.sum_x, s.sum_x_sq)
        cxy = covariance_of(n_arm, s.sum_x, s.sum, s.sum_xy)
        est = mean_of(n_arm, s.sum) - theta * (mean_of(n_arm, s.sum_x) - x_bar)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.maximum(vy + theta**2 * vx - 2.0 * theta * cxy, 0.0) / n_arm
        return est, var

    est_c, var_c = adjusted(c, n_c)
    est_t, var_t = adjusted(t, n_t)
    plain = mean_estimates(c.outcome, t.outcome, alpha)
    shape = np.broadcast_shapes(est_c.shape, est_t.shape)
    checks = [*_unit_checks(n_c, n_t), (ErrorCode.ZERO_VARIANCE, ~(var_c + var_t > 0))]
    return Estimates(
        "cuped",
        plain.control,
        plain.treatment,
        est_c,
        est_t,
        var_c,
        var_t,
        n_c - 1.0,
        n_t - 1.0,
        first_error(shape, checks),
    )
