"""Guardrails on live results: one-sided always-valid tests that fail closed.

Each bound of a guardrail is a one-sided test of H0 "the bound holds" against H1 "it is
breached", with the one-sided normal-mixture sequential p-value (``abllm.stats``), so the
controller may evaluate it at every tick:

* a bound relative to control (``max_ratio`` / ``min_ratio`` = r) is H1: μT > r·μC (or <),
  tested on Fieller's pivot ``(μ̂T − r·μ̂C) / √(se_T² + r²·se_C²)`` — the engine's relative
  hypothesis, which for proportions uses the restricted-MLE score variance. The pivot needs no
  positive control mean, so a control at 0 % errors still trips ``max_ratio``;
* an absolute bound (``max`` / ``min`` = b) tests the treatment arm alone: ``(μ̂T − b)/se_T``.

Degenerate data get exact answers instead of a NaN that reads as "fine":

* binary metrics (proportions, and rates over calls such as ``error_rate``) whose observed
  standard error is 0 (every unit at 0 % or 100 %) use the binomial variance *under H0*, the
  score test's variance (b(1−b)/n for an absolute bound; for a ratio bound the rates
  p̃C = (x_C + x_T)/(n_C + r·n_T), p̃T = r·p̃C that satisfy H0) — so 100 % errors against
  ``max: 0.05`` breaches, and 100 % against ``max: 0.99`` with 100 units does not;
* any other metric with zero variance is constant: the bound is breached exactly when the
  observed value is beyond it (p = 0), else it holds (p = 1);
* a test that still cannot be computed (no valid estimate with ``min_units`` units per arm)
  **fails closed**: the guardrail counts as breached, and its reason says why.

Family-wise error: every bound × treatment test of one experiment belongs to one family of
``m`` tests, and each is judged at ``alpha / m`` (Bonferroni; the reported p-value is
``min(1, m·p)``). The probability that any guardrail of the experiment fires while every
bound holds is then at most the largest guardrail ``alpha``, at every look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from abllm.analysis.collect import MetricData
from abllm.analysis.compute import test_config
from abllm.analysis.report import fmt_value
from abllm.analysis.result import GuardrailStatus, MetricResult
from abllm.analysis.specs import MetricSpec
from abllm.config import DecisionRule, Guardrail
from abllm.stats import Comparison as StatsComparison
from abllm.stats import Hypothesis, TestConfig, compare, sequential_p_value

NAN = float("nan")
#: Columns whose values are 0/1 flags: their rates are binomial (see the module docstring).
_BINARY_COLUMNS = frozenset({"error", "fallback", "schema_valid", "thumbs_up"})


@dataclass(frozen=True)
class _Test:
    """One bound's outcome: raw one-sided p-value (NaN: cannot be computed), bound, wording."""

    p: float
    bound: float
    what: str
    note: str = ""


def _binary(spec: MetricSpec) -> bool:
    if spec.kind == "proportion":
        return True
    if spec.kind != "ratio" or spec.denominator is not None:
        return False
    return spec.value.source == "derived" or spec.value.name in _BINARY_COLUMNS


def _null_variance(binary: bool, ratio: float | None, bound: float, c: StatsComparison) -> float:
    """Variance of the pivot under H0 for a binary metric (0 when not applicable)."""
    if not binary:
        return 0.0
    n_t, n_c = c.treatment.n, c.control.n
    if ratio is None:
        b = min(max(bound, 0.0), 1.0)
        return b * (1.0 - b) / n_t if n_t > 0 else 0.0
    x_t, x_c = c.treatment.mean * n_t, c.control.mean * n_c
    p_c = min(max((x_c + x_t) / (n_c + ratio * n_t), 0.0), 1.0)
    p_t = min(ratio * p_c, 1.0)
    return p_t * (1.0 - p_t) / n_t + ratio**2 * p_c * (1.0 - p_c) / n_c


def _one_sided_p(
    diff: float, var: float, n: float, alt: str, alpha: float, tuning: float
) -> tuple[float, str]:
    """Sequential one-sided p-value of ``diff`` with variance ``var``; exact when var = 0."""
    if not (math.isfinite(diff) and math.isfinite(var)):
        return NAN, ""
    signed = diff if alt == "greater" else -diff
    if var <= 0:
        return (0.0 if signed > 0 else 1.0), " (exact: no variation in the data)"
    z = diff / math.sqrt(var)
    p = sequential_p_value(z, n, alpha=alpha, tuning_n=tuning, alternative=alt)  # type: ignore[arg-type]
    return float(p), ""


def _bound_test(
    g: Guardrail,
    spec: MetricSpec,
    plain: StatsComparison,
    relative: StatsComparison | None,
    ratio: float | None,
    bound: float,
    alt: str,
    tuning: float,
) -> float | tuple[float, str]:
    """p-value of one bound (module docstring): the engine's test, else the exact fallback."""
    if relative is not None and relative.error is None and math.isfinite(relative.seq_p_value):
        return relative.seq_p_value
    t, c = plain.treatment, plain.control
    if ratio is None:
        diff, var, n = t.mean - bound, t.se**2, t.n
    else:
        diff, var, n = t.mean - ratio * c.mean, t.se**2 + ratio**2 * c.se**2, t.n + c.n
    if not var > 0:
        var = _null_variance(_binary(spec), ratio, bound, plain)
    return _one_sided_p(diff, var, n, alt, g.alpha, tuning)


def _tests(
    g: Guardrail, data: MetricData, control: str, variant: str, rule: DecisionRule
) -> list[_Test]:
    base = test_config(rule, data, None)
    ctl, trt = data.arms[control], data.arms[variant]
    plain = compare(ctl, trt, TestConfig(alpha=g.alpha))  # type: ignore[type-var]
    out: list[_Test] = []
    bounds = (
        (g.max_ratio, "greater", True, "above {:g}x control"),
        (g.min_ratio, "less", True, "below {:g}x control"),
        (g.max, "greater", False, "above {:g}"),
        (g.min, "less", False, "below {:g}"),
    )
    for value, alt, is_ratio, words in bounds:
        if value is None:
            continue
        relative = None
        if is_ratio:
            cfg = TestConfig(
                alpha=g.alpha,
                hypothesis=Hypothesis(alt, null=value - 1.0, relative=True),  # type: ignore[arg-type]
                sequential=True,
                higher_is_better=base.higher_is_better,
                sequential_tuning_n=base.sequential_tuning_n,
            )
            relative = compare(ctl, trt, cfg)  # type: ignore[type-var]
            tuning = base.sequential_tuning_n
        else:
            tuning = max(float(g.min_units) * 2.0, 1000.0)
        res = _bound_test(
            g, data.spec, plain, relative, value if is_ratio else None, value, alt, tuning
        )
        p, note = res if isinstance(res, tuple) else (res, "")
        out.append(_Test(p, value, words.format(value), note))
    return out


def family_size(guardrails: Sequence[Guardrail], treatments: Sequence[str]) -> int:
    """Bound × treatment tests of one experiment: the Bonferroni family (module docstring)."""
    bounds = sum(
        sum(b is not None for b in (g.max, g.min, g.max_ratio, g.min_ratio)) for g in guardrails
    )
    return max(1, bounds * len(treatments))


def evaluate_guardrails(
    guardrails: Sequence[Guardrail],
    data: Mapping[str, MetricData],
    results: Mapping[str, MetricResult],
    control: str,
    treatments: Sequence[str],
    rule: DecisionRule,
) -> tuple[list[GuardrailStatus], list[str]]:
    """Status of every guardrail for every treatment, and warnings for unknown metrics."""
    statuses: list[GuardrailStatus] = []
    warnings: list[str] = []
    m = family_size(guardrails, treatments)
    for g in guardrails:
        metric = results.get(g.metric)
        if metric is None or g.metric not in data:
            warnings.append(f"guardrail metric {g.metric!r} has no data (or is not a metric)")
            continue
        statuses += [_status(g, data[g.metric], metric, control, v, rule, m) for v in treatments]
    return statuses, warnings


def _status(
    g: Guardrail,
    data: MetricData,
    metric: MetricResult,
    control: str,
    v: str,
    rule: DecisionRule,
    family: int,
) -> GuardrailStatus:
    arm_t, arm_c = metric.arms.get(v), metric.arms.get(control)
    value = arm_t.mean if arm_t else NAN
    n_min = min(arm_t.n if arm_t else 0, arm_c.n if arm_c else 0)
    if n_min < g.min_units or v not in data.arms or control not in data.arms:
        return GuardrailStatus(
            g.metric, v, False, g.action, value, NAN, NAN,
            f"waiting for {g.min_units:,} units per arm ({n_min:,} so far)",
        )  # fmt: skip
    tests = _tests(g, data, control, v, rule)
    shown = fmt_value(metric, value)
    ctl = fmt_value(metric, arm_c.mean if arm_c else NAN)
    failed = [t for t in tests if not math.isfinite(t.p)]
    if failed:
        return GuardrailStatus(
            g.metric, v, True, g.action, value, failed[0].bound, NAN,
            f"{v}'s {metric.label} {shown} (control {ctl}) cannot be tested against "
            f"{failed[0].what} with {n_min:,} units per arm; failing closed",
        )  # fmt: skip
    best = min(tests, key=lambda t: t.p)
    p = min(1.0, best.p * family)
    breached = p < g.alpha
    verdict = "is" if breached else "is not shown to be"
    scope = f", Bonferroni over {family} guardrail tests" if family > 1 else ""
    reason = (
        f"{v}'s {metric.label} {shown} (control {ctl}) {verdict} {best.what} "
        f"(sequential p={p:.3g}{best.note}{scope}, alpha {g.alpha:g})"
    )
    return GuardrailStatus(g.metric, v, breached, g.action, value, best.bound, p, reason)
