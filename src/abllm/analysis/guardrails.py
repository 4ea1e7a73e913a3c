"""Guardrails on live results: one-sided always-valid tests, so they may run every minute.

A bound relative to control (``max_ratio`` / ``min_ratio``) is the relative hypothesis
H1: μT/μC > max_ratio (or < min_ratio), tested by the engine with Fieller's pivot and the
one-sided mixture sequential p-value. An absolute bound (``max`` / ``min``) tests the treatment
arm alone: z = (value − bound)/se with the same one-sided sequential p-value
(``abllm.stats.sequential_p_value``). A guardrail is breached when its p-value is below the
guardrail's ``alpha`` and both arms have ``min_units`` units with data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from abllm.analysis.collect import MetricData
from abllm.analysis.compute import test_config
from abllm.analysis.report import fmt_value
from abllm.analysis.result import GuardrailStatus, MetricResult
from abllm.config import DecisionRule, Guardrail
from abllm.stats import Hypothesis, compare, sequential_p_value

NAN = float("nan")


def _relative(
    g: Guardrail, data: MetricData, control: str, variant: str, rule: DecisionRule
) -> tuple[float, float, str] | None:
    """(p, bound ratio, what) of the strictest breached-or-not relative bound."""
    out: list[tuple[float, float, str]] = []
    base = test_config(rule, data, None)
    for ratio, alt, word in ((g.max_ratio, "greater", "above"), (g.min_ratio, "less", "below")):
        if ratio is None:
            continue
        cfg = type(base)(
            alpha=g.alpha,
            hypothesis=Hypothesis(alt, null=ratio - 1.0, relative=True),  # type: ignore[arg-type]
            sequential=True,
            higher_is_better=base.higher_is_better,
            sequential_tuning_n=base.sequential_tuning_n,
        )
        c = compare(data.arms[control], data.arms[variant], cfg)  # type: ignore[type-var]
        out.append((c.seq_p_value, ratio, f"{word} {ratio:g}x control"))
    return min(out, key=lambda t: t[0] if math.isfinite(t[0]) else 2.0) if out else None


def _absolute(
    g: Guardrail, data: MetricData, control: str, variant: str
) -> tuple[float, float, str] | None:
    out: list[tuple[float, float, str]] = []
    c = compare(data.arms[control], data.arms[variant])  # type: ignore[type-var]
    arm = c.treatment
    for bound, alt, word in ((g.max, "greater", "above"), (g.min, "less", "below")):
        if bound is None:
            continue
        z = (arm.mean - bound) / arm.se if arm.se > 0 else NAN
        p = float(
            sequential_p_value(
                z,
                arm.n,
                alpha=g.alpha,
                tuning_n=max(float(g.min_units) * 2.0, 1000.0),
                alternative=alt,  # type: ignore[arg-type]
            )
        )
        out.append((p, bound, f"{word} {bound:g}"))
    return min(out, key=lambda t: t[0] if math.isfinite(t[0]) else 2.0) if out else None


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
    for g in guardrails:
        metric = results.get(g.metric)
        if metric is None or g.metric not in data:
            warnings.append(f"guardrail metric {g.metric!r} has no data (or is not a metric)")
            continue
        statuses += [_status(g, data[g.metric], metric, control, v, rule) for v in treatments]
    return statuses, warnings


def _status(
    g: Guardrail, data: MetricData, metric: MetricResult, control: str, v: str, rule: DecisionRule
) -> GuardrailStatus:
    arm_t, arm_c = metric.arms.get(v), metric.arms.get(control)
    value = arm_t.mean if arm_t else NAN
    n_min = min(arm_t.n if arm_t else 0, arm_c.n if arm_c else 0)
    if n_min < g.min_units or v not in data.arms or control not in data.arms:
        return GuardrailStatus(
            g.metric, v, False, g.action, value, NAN, NAN,
            f"waiting for {g.min_units:,} units per arm ({n_min:,} so far)",
        )  # fmt: skip
    tests = [t for t in (_relative(g, data, control, v, rule), _absolute(g, data, control, v)) if t]
    p, bound, what = min(tests, key=lambda t: t[0] if math.isfinite(t[0]) else 2.0)
    breached = math.isfinite(p) and p < g.alpha
    shown = fmt_value(metric, value)
    ctl = fmt_value(metric, arm_c.mean if arm_c else NAN)
    verdict = "is" if breached else "is not shown to be"
    reason = (
        f"{v}'s {metric.label} {shown} (control {ctl}) {verdict} {what} "
        f"(sequential p={p:.3g}, alpha {g.alpha:g})"
    )
    return GuardrailStatus(g.metric, v, breached, g.action, value, bound, p, reason)
