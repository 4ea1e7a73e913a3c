"""abllm.stats — exact, fast inference on sufficient statistics (pure: no I/O).

The store aggregates per unit and per arm in SQL; this package only ever sees the sums.

Inputs (one per arm; fields are floats or numpy arrays that broadcast):

====================  =================================================================
``MeanStats``         per-unit metric: ``n, sum, sum_sq``
``ProportionStats``   binary per-unit metric: ``n, successes``
``RatioStats``        per-request metric over units (latency per call, cost per request):
                      ``n, sum_num, sum_den, sum_num_sq, sum_den_sq, sum_num_den``
``CupedStats``        outcome + pre-exposure covariate: ``n, sum, sum_sq, sum_x, sum_x_sq,
                      sum_xy``
``QuantileStats``     p50/p95/p99 with unit-clustered se; see :mod:`abllm.stats.quantiles`
                      for the three things the store computes (and ``quantile_bound_levels``)
====================  =================================================================

Summaries other than quantiles add (``a + b``) so partial aggregates merge, and
``MeanStats.stack([...])`` turns many into one array-backed summary.

Analysis::

    from abllm.stats import MeanStats, TestConfig, Hypothesis, compare, analyze_arms

    c = compare(control, treatment)                       # -> Comparison
    c = compare(ctl, trt, TestConfig(sequential=True))    # decide on always-valid p-values
    guard = compare(ctl_err, trt_err, TestConfig(
        alpha=0.01, hypothesis=Hypothesis.non_inferiority(0.10, higher_is_better=False)))
    res = analyze_arms(control, {"b": b, "c": c}, correction="holm")   # -> ArmsAnalysis
    table = compare_many(ctl_arrays, trt_arrays)          # -> ComparisonTable (vectorised)
    table = adjust_table(table, "bh", groups=segment_ids)  # correction scope = your groups

A :class:`Comparison` carries per-arm ``n, mean, sd, se, ci``; ``diff`` with ``diff_ci``;
``rel_lift`` with ``rel_ci`` (Fieller; Koopman score for proportions — consistent with the
p-value); ``p_value`` and the always-valid ``seq_p_value`` with ``seq_diff_ci``/``seq_rel_ci``;
``chance_to_win``, ``expected_loss`` (of shipping the treatment); ``adjusted_p_value``,
``significant``; and ``error`` (an :class:`ErrorCode`, or None) instead of an exception for
degenerate input. ``Comparison.as_dict()`` is JSON-safe (NaN/inf → None).

Also: ``srm`` / ``srm_p_values`` (sample ratio mismatch, flagged at p < 0.001),
``proportions_chi2`` (k-arm χ²), ``adjust_p_values`` (Holm, Benjamini–Hochberg),
``plan`` / ``sample_size`` / ``minimum_detectable_effect`` / ``power_at`` / ``days_needed``,
``sequential_p_value`` / ``sequential_multiplier``, ``gaussian_bayes`` / ``beta_binomial_bayes``.
Each module's docstring names the papers behind its formulas.
"""

from abllm.stats.bayes import BayesResult, beta_binomial_bayes, gaussian_bayes
from abllm.stats.compare import Stats, compare, compare_many
from abllm.stats.config import GaussianPrior, Hypothesis, TestConfig
from abllm.stats.multiarm import ArmsAnalysis, analyze_arms
from abllm.stats.multiple import Correction, adjust_comparisons, adjust_p_values, adjust_table
from abllm.stats.power import (
    PowerPlan,
    days_needed,
    minimum_detectable_effect,
    plan,
    power_at,
    sample_size,
)
from abllm.stats.proportions import ChiSquareResult, proportions_chi2
from abllm.stats.quantiles import QuantileStats, quantile_bound_levels
from abllm.stats.results import (
    ArmColumns,
    ArmSummary,
    Comparison,
    ComparisonTable,
    ErrorCode,
    MetricKind,
)
from abllm.stats.sequential import sequential_multiplier, sequential_p_value
from abllm.stats.srm import SRM_THRESHOLD, SrmResult, srm, srm_p_values
from abllm.stats.summaries import CupedStats, MeanStats, ProportionStats, RatioStats

__all__ = [
    "SRM_THRESHOLD",
    "ArmColumns",
    "ArmSummary",
    "ArmsAnalysis",
    "BayesResult",
    "ChiSquareResult",
    "Comparison",
    "ComparisonTable",
    "Correction",
    "CupedStats",
    "ErrorCode",
    "GaussianPrior",
    "Hypothesis",
    "MeanStats",
    "MetricKind",
    "PowerPlan",
    "ProportionStats",
    "QuantileStats",
    "RatioStats",
    "SrmResult",
    "Stats",
    "TestConfig",
    "adjust_comparisons",
    "adjust_p_values",
    "adjust_table",
    "analyze_arms",
    "beta_binomial_bayes",
    "compare",
    "compare_many",
    "days_needed",
    "gaussian_bayes",
    "minimum_detectable_effect",
    "plan",
    "power_at",
    "proportions_chi2",
    "quantile_bound_levels",
    "sample_size",
    "sequential_multiplier",
    "sequential_p_value",
    "srm",
    "srm_p_values",
]
