"""Treatment versus control: one call for a scalar comparison, one for thousands.

Every kind goes through the same steps once its estimator (:mod:`abllm.stats._estimates`,
:mod:`abllm.stats.quantiles`) has produced estimates and variances:

* **test** of the configured :class:`Hypothesis`: Welch t with Welch–Satterthwaite df for
  means, ratios and CUPED (``scipy.stats.ttest_ind(equal_var=False)``); the score z-test for
  proportions (pooled at "no difference", ``proportions_ztest``; Farrington–Manning or
  Miettinen–Nurminen restricted MLE for a margin); normal for quantiles. A relative null
  ``μT/μC = θ0`` is tested as ``μT − θ0·μC = 0`` (Fieller's pivot), so no delta method on the
  ratio is needed.
* **absolute CI**: ``diff ± q·se`` (Welch t quantile), Newcombe's hybrid score interval for
  proportions.
* **relative CI**: Fieller's interval (Koopman's score interval for proportions), which
  inverts the same test, so it excludes 0 exactly when ``p < alpha``.
* **sequential**: always-valid p-value and confidence sequence from the same z statistic
  (:mod:`abllm.stats.sequential`).
* **Bayesian**: Gaussian on the difference, or Beta-Binomial for proportions
  (:mod:`abllm.stats.bayes`).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from abllm.errors import ValidationError
from abllm.stats._estimates import (
    Estimates,
    cuped_estimates,
    first_error,
    mean_estimates,
    proportion_estimates,
    ratio_estimates,
)
from abllm.stats._types import FloatArray, arr
from abllm.stats.bayes import beta_binomial_bayes, gaussian_bayes
from abllm.stats.config import TestConfig
from abllm.stats.frequentist import critical_value, fieller_interval, p_value, welch_df
from abllm.stats.proportions import koopman_ratio_interval, newcombe_interval, score_statistic
from abllm.stats.quantiles import QuantileStats, quantile_estimates
from abllm.stats.results import ArmColumns, Comparison, ComparisonTable, ErrorCode
from abllm.stats.sequential import sequential_multiplier, sequential_p_value
from abllm.stats.summaries import CupedStats, MeanStats, ProportionStats, RatioStats

Stats = MeanStats | ProportionStats | RatioStats | CupedStats | QuantileStats
S = TypeVar("S", MeanStats, ProportionStats, RatioStats, CupedStats, QuantileStats)

_DEFAULT = TestConfig()


def compare(control: S, treatment: S, config: TestConfig = _DEFAULT) -> Comparison:
    """Compare one treatment with the control (scalar summaries).

    >>> c = compare(MeanStats(1000, 3800.0, 15400.0), MeanStats(1000, 3900.0, 16200.0))
    >>> round(c.diff, 3), c.significant
    (0.1, True)
    """
    table = compare_many(control, treatment, config)
    if len(table) != 1:
        raise ValidationError(
            f"compare takes scalar summaries; got shape {table.shape} (use compare_many)"
        )
    return table.row(0)


def compare_many(control: S, treatment: S, config: TestConfig = _DEFAULT) -> ComparisonTable:
    """Vectorised comparisons: summary fields are arrays that broadcast together.

    Typical shapes: control ``(segments, 1)`` and treatments ``(segments, arms)``, or flat
    arrays of metrics. Degenerate elements get an error code, never an exception.
    """
    if type(control) is not type(treatment):
        raise ValidationError(
            "control and treatment must be the same kind of summary, got "
            f"{type(control).__name__} and {type(treatment).__name__}"
        )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _compare(control, treatment, config)


def _compare(control: Stats, treatment: Stats, config: TestConfig) -> ComparisonTable:
    alpha = config.alpha
    counts = None
    if isinstance(control, MeanStats) and isinstance(treatment, MeanStats):
        est = mean_estimates(control, treatment, alpha)
    elif isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats):
        est = proportion_estimates(control, treatment, alpha)
        t = treatment
        counts = (arr(control.successes), arr(control.n), arr(t.successes), arr(t.n))
    elif isinstance(control, RatioStats) and isinstance(treatment, RatioStats):
        est = ratio_estimates(control, treatment, alpha)
    elif isinstance(control, CupedStats) and isinstance(treatment, CupedStats):
        est = cuped_estimates(control, treatment, alpha)
    elif isinstance(control, QuantileStats) and isinstance(treatment, QuantileStats):
        est = quantile_estimates(control, treatment, alpha)
    else:
        raise ValidationError(f"unsupported summary type {type(control).__name__}")
    return _infer(est, config, counts)


Counts = tuple[FloatArray, FloatArray, FloatArray, FloatArray]


def _statistic(
    est: Estimates, config: TestConfig, counts: Counts | None, df: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Test statistic for H0 and its degrees of freedom (inf = normal)."""
    hyp = config.hypothesis
    if counts is not None:
        s_c, n_c, s_t, n_t = counts
        null = hyp.null_ratio if hyp.relative else hyp.null
        stat = score_statistic(s_t, n_t, s_c, n_c, null, hyp.relative)
        return stat, np.full(stat.shape, np.inf)
    if hyp.relative:
        # H0: μT = θ0·μC, tested as the linear contrast μT − θ0·μC (Fieller's pivot).
        theta0 = hyp.null_ratio
        var0 = est.var_t + theta0**2 * est.var_c
        stat = (est.est_t - theta0 * est.est_c) / np.sqrt(var0)
        return stat, welch_df(est.var_t, est.dof_t, theta0**2 * est.var_c, est.dof_c)
    se = np.sqrt(est.var_t + est.var_c)
    return (est.est_t - est.est_c - hyp.null) / se, df


def _infer(est: Estimates, config: TestConfig, counts: Counts | None) -> ComparisonTable:
    hyp, alpha, alt = config.hypothesis, config.alpha, config.hypothesis.alternative
    diff = est.est_t - est.est_c
    se = np.sqrt(est.var_t + est.var_c)
    df = welch_df(est.var_t, est.dof_t, est.var_c, est.dof_c)
    df = np.where(np.isnan(df), np.inf, df)
    stat, df_test = _statistic(est, config, counts, df)
    p = p_value(stat, df_test, alt)

    q_abs = critical_value(alpha, df, alt)
    q_rel = critical_value(alpha, df_test, alt) if hyp.relative else q_abs
    n_total = est.control.n + est.treatment.n
    q_seq = sequential_multiplier(
        n_total, alpha=alpha, tuning_n=config.sequential_tuning_n, alternative=alt
    )
    seq_p = sequential_p_value(
        stat, n_total, alpha=alpha, tuning_n=config.sequential_tuning_n, alternative=alt
    )
    positive_base = est.est_c > 0
    rel = np.where(positive_base, est.est_t / est.est_c - 1.0, np.nan)

    if counts is not None:
        s_c, n_c, s_t, n_t = counts
        ci_lo, ci_hi = newcombe_interval(s_t, n_t, s_c, n_c, q_abs)
        both_q = np.stack(np.broadcast_arrays(q_rel, q_seq))
        r_lo, r_hi = koopman_ratio_interval(s_t, n_t, s_c, n_c, both_q)
    else:
        ci_lo, ci_hi = diff - q_abs * se, diff + q_abs * se
        both_q = np.stack(np.broadcast_arrays(q_rel, q_seq))
        r_lo, r_hi = fieller_interval(est.est_t, est.est_c, est.var_t, est.var_c, both_q)
    # Koopman's score interval stays defined at a control of 0 successes: (finite, +inf).
    rel_defined = positive_base | (counts is not None)
    r_lo = np.where(rel_defined, r_lo - 1.0, np.nan)
    r_hi = np.where(rel_defined, r_hi - 1.0, np.nan)

    better = config.higher_is_better
    if config.bayes == "beta_binomial" and counts is not None:
        s_c, n_c, s_t, n_t = counts
        bayes = beta_binomial_bayes(
            s_c, n_c, s_t, n_t, higher_is_better=better, prior=config.beta_prior
        )
    else:
        bayes = gaussian_bayes(diff, se, higher_is_better=better, prior=config.prior)

    shape = np.broadcast_shapes(diff.shape, est.error_code.shape)
    baseline_error = first_error(
        shape, [(ErrorCode.NONPOSITIVE_BASELINE, np.asarray(hyp.relative & ~positive_base))]
    )
    error = np.where(est.error_code != 0, est.error_code, baseline_error).astype(np.int8)
    bad = error != 0

    def out(x: FloatArray) -> FloatArray:
        """The table's shape (``bad`` has it); NaN where there is no valid inference."""
        return np.where(bad, np.nan, x)

    def keep(x: FloatArray) -> FloatArray:
        return x if x.shape == shape else np.broadcast_to(x, shape)

    seq_lo, seq_hi = diff - q_seq * se, diff + q_seq * se
    decision = seq_p if config.sequential else p
    return ComparisonTable(
        kind=est.kind,
        config=config,
        control=_broadcast_arm(est.control, shape),
        treatment=_broadcast_arm(est.treatment, shape),
        diff=keep(diff),
        diff_se=out(se),
        df=out(df),
        diff_ci_lower=out(ci_lo),
        diff_ci_upper=out(ci_hi),
        rel_lift=keep(rel),
        rel_ci_lower=out(r_lo[0]),
        rel_ci_upper=out(r_hi[0]),
        p_value=out(p),
        seq_p_value=out(seq_p),
        seq_diff_ci_lower=out(seq_lo),
        seq_diff_ci_upper=out(seq_hi),
        seq_rel_ci_lower=out(r_lo[1]),
        seq_rel_ci_upper=out(r_hi[1]),
        chance_to_win=out(bayes.chance_to_win),
        expected_loss=out(bayes.expected_loss),
        expected_loss_control=out(bayes.expected_loss_control),
        adjusted_p_value=out(decision),
        error_code=error,
    )


def _broadcast_arm(a: ArmColumns, shape: tuple[int, ...]) -> ArmColumns:
    cols = (a.n, a.mean, a.sd, a.se, a.ci_lower, a.ci_upper)
    return ArmColumns(*(v if v.shape == shape else np.broadcast_to(v, shape) for v in cols))
