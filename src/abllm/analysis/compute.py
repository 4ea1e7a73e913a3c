"""From per-variant summaries to typed metric results, with the stats engine.

Multiple-testing families (``decision.correction``): the primary metric is corrected across
its treatments only (it is pre-registered); the other configured metrics form one family of
metrics × treatments; each built-in metric is its own family across treatments. Decisions and
``significant`` use the sequential p-value when ``decision.sequential`` is on.

Canary splits: on arms more uneven than 1:2 a comparison is significant only once the smaller
arm has ``decision.min_units_per_arm`` units (:func:`decidable`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from abllm.analysis.collect import MetricData, Summary
from abllm.analysis.result import ArmResult, Comparison, MetricResult
from abllm.config import DecisionRule
from abllm.stats import (
    ArmSummary,
    MeanStats,
    ProportionStats,
    QuantileStats,
    RatioStats,
    TestConfig,
    adjust_comparisons,
    analyze_arms,
    compare,
)
from abllm.stats import Comparison as StatsComparison
from abllm.stats.power import rule_sample_size

NAN = float("nan")


def test_config(rule: DecisionRule, data: MetricData, tuning_n: float | None) -> TestConfig:
    """The engine settings for one metric under the decision rule."""
    return TestConfig(
        alpha=rule.alpha,
        sequential=rule.sequential,
        higher_is_better=data.spec.direction == "increase",
        sequential_tuning_n=tuning_n or TestConfig.sequential_tuning_n,
        bayes="beta_binomial" if data.spec.kind == "proportion" else "gaussian",
    )


def _empty(data: MetricData) -> Summary:
    kind = data.spec.kind
    if kind == "mean":
        return MeanStats(0.0, 0.0, 0.0)
    if kind == "proportion":
        return ProportionStats(0.0, 0.0)
    if kind == "ratio":
        return RatioStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    level = float(data.spec.quantile or 0.5)
    return QuantileStats(level, 0.0, NAN, NAN, NAN, RatioStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0))


def compare_arms(
    data: MetricData, control: str, treatments: Sequence[str], config: TestConfig
) -> tuple[dict[str, StatsComparison], ArmSummary]:
    """Every treatment against control (uncorrected) and the control's own summary."""
    arms = {v: data.arms.get(v) or _empty(data) for v in [control, *treatments]}
    if not treatments:
        solo = compare(arms[control], arms[control], config)  # type: ignore[type-var]
        return {}, solo.control
    res = analyze_arms(
        arms[control],  # type: ignore[type-var]
        {v: arms[v] for v in treatments},
        config,
        correction="none",
    )
    first = next(iter(res.comparisons.values()))
    return res.comparisons, first.control


def _arm(s: ArmSummary, summary: Summary | None) -> ArmResult:
    events: int | None = None
    if isinstance(summary, QuantileStats):
        events = int(float(summary.n_events))
    return ArmResult(
        n=round(s.n), mean=float(s.mean), ci=(s.ci[0], s.ci[1]), sd=s.sd, events=events
    )


#: A split more uneven than this (smaller arm / larger arm) is a canary split (module docstring).
UNBALANCED = 0.5


def decidable(
    n_control: npt.ArrayLike, n_treatment: npt.ArrayLike, floor: int
) -> npt.NDArray[np.bool_]:
    """Whether a comparison may be called significant (the canary floor, module docstring).

    Under A/A the skewness of the difference of means is
    μ3·(1/n_T² − 1/n_C²)/se³ ≈ γ/√n_small (Edgeworth; Hall 1992, §2.6): it cancels for equal
    arms and does not for a 95/5 canary, where skewed metrics (lognormal latency) give the
    normal tests too many false positives until the small arm is large. So on a split more
    uneven than ``UNBALANCED`` nothing is significant before the smaller arm has ``floor``
    (``decision.min_units_per_arm``) units; calibration in docs/analysis.md.
    """
    c, t = np.asarray(n_control, dtype=np.float64), np.asarray(n_treatment, dtype=np.float64)
    small, large = np.minimum(c, t), np.maximum(c, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        balanced = small >= UNBALANCED * large
    return np.asarray(balanced | (small >= floor))


def _comparison(c: StatsComparison, floor: int = 0) -> Comparison:
    ok = bool(decidable(c.control.n, c.treatment.n, floor))
    return Comparison(
        diff=c.diff,
        diff_ci=c.diff_ci,
        p_value=c.p_value,
        p_value_sequential=c.seq_p_value,
        rel_lift=c.rel_lift,
        rel_ci=c.rel_ci,
        chance_to_win=c.chance_to_win,
        p_value_adjusted=c.adjusted_p_value,
        significant=bool(c.significant) and ok,
        error=None if c.error is None else str(c.error),
        seq_diff_ci=c.seq_diff_ci,
        seq_rel_ci=c.seq_rel_ci,
        expected_loss=c.expected_loss,
    )


def metric_results(
    metrics: Sequence[MetricData],
    control: str,
    treatments: Sequence[str],
    rule: DecisionRule,
    primary: str | None,
    tuning_n: float | None,
) -> dict[str, MetricResult]:
    """Compare every metric, correct within its family (module docstring), type the result."""
    raw: list[tuple[MetricData, dict[str, StatsComparison], ArmSummary]] = []
    for data in metrics:
        cmps, ctl = compare_arms(data, control, treatments, test_config(rule, data, tuning_n))
        raw.append((data, cmps, ctl))
    flat: list[StatsComparison] = []
    groups: list[str] = []
    for data, cmps, _ in raw:
        family = _family(data, primary)
        for c in cmps.values():
            flat.append(c)
            groups.append(family)
    adjusted = iter(adjust_comparisons(flat, rule.correction, groups) if flat else [])
    out: dict[str, MetricResult] = {}
    for data, cmps, ctl in raw:
        fixed = {v: next(adjusted) for v in cmps}
        arms = {control: _arm(ctl, data.arms.get(control))}
        for v, c in fixed.items():
            arms[v] = _arm(c.treatment, data.arms.get(v))
        spec = data.spec
        out[spec.name] = MetricResult(
            name=spec.name,
            kind=spec.kind,
            role="primary" if spec.name == primary else spec.role,
            direction=spec.direction,
            builtin=spec.builtin,
            label=spec.title,
            arms=arms,
            comparisons={v: _comparison(c, rule.min_units_per_arm) for v, c in fixed.items()},
        )
    return out


def _family(data: MetricData, primary: str | None) -> str:
    if data.spec.name == primary:
        return "primary"
    if data.spec.builtin:
        return "builtin:" + data.spec.name
    return "configured"


def per_unit_sd(summary: Summary) -> float:
    """The per-unit standard deviation the power calculation needs (linearised for ratios and
    quantiles: standard error × √units)."""
    if isinstance(summary, MeanStats):
        return math.sqrt(float(summary.variance))
    if isinstance(summary, ProportionStats):
        p = float(summary.rate)
        return math.sqrt(p * (1.0 - p))
    if isinstance(summary, RatioStats):
        return math.sqrt(float(summary.ratio_variance) * float(summary.n))
    if summary.cluster is None:
        return NAN
    return math.sqrt(float(summary.variance) * float(summary.cluster.n))


def baseline(summary: Summary) -> float:
    """The control's value of the metric."""
    if isinstance(summary, MeanStats):
        return float(summary.mean)
    if isinstance(summary, ProportionStats):
        return float(summary.rate)
    if isinstance(summary, RatioStats):
        return float(summary.ratio)
    return float(summary.estimate)


def required_units(rule: DecisionRule, control: Summary | None, arms: int = 2) -> int | None:
    """Units per arm for ``decision.power`` at ``decision.mde`` (None without an MDE or data).

    Sized for the test the rule runs (``abllm.stats.rule_sample_size``): the always-valid
    boundary when ``decision.sequential``, ``decision.correction`` across the ``arms − 1``
    treatments, the control's observed mean and per-unit sd, and never below
    ``min_units_per_arm``. ``abllm power`` computes the same number.
    """
    if rule.mde is None or control is None:
        return None
    base, sd = baseline(control), per_unit_sd(control)
    effect = rule.mde * abs(base) if rule.mde_type == "relative" else rule.mde
    if not (math.isfinite(effect) and effect > 0 and math.isfinite(sd) and sd > 0):
        return None
    sd_t = sd
    if isinstance(control, ProportionStats) and 0 < base + effect < 1:
        sd_t = math.sqrt((base + effect) * (1.0 - base - effect))  # as abllm power does
    return rule_sample_size(
        effect,
        sd,
        sd_treatment=sd_t,
        alpha=rule.alpha,
        power=rule.power,
        treatments=max(arms - 1, 1),
        correction=rule.correction,
        sequential=rule.sequential,
        min_units_per_arm=rule.min_units_per_arm,
        arms=arms,
    )


def tuning_units(rule: DecisionRule, required: int | None, arms: int) -> float | None:
    """Where the confidence sequence is tightest: the planned total sample, when known."""
    planned = max(required or 0, rule.min_units_per_arm) * max(arms, 2)
    return float(planned) if planned > 0 else None
