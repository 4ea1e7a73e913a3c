"""The recommendation: the pre-registered decision rule applied to a result.

Order of checks (each stops at the first that applies), following the seeds:

1. **INVALID** when the sample ratio mismatch test fires for the control or for every
   treatment: nothing else can be trusted (a mismatch in some treatments only leaves them out
   of ``treatments``; see ``abllm.analysis.engine.build_result``).
2. **PAUSE** when a guardrail with action ``pause`` or ``rollback`` is breached.
3. **CONTINUE** while an arm has fewer than ``min_units_per_arm`` units with primary data.
4. **SHIP** the best treatment that is significantly better on the primary metric (sequential
   p-value when ``decision.sequential``, corrected across treatments), with
   an error rate ≤ ``max_error_rate_ratio`` × control and a p95 latency ≤
   ``max_p95_latency_ratio`` × control (seed 001's promotion rule).
5. **KEEP_CONTROL** when winners break a guard, or every treatment is significantly worse, or
   the planned sample is reached with only worse treatments.
6. **NO_DIFFERENCE** when the planned sample (power calculation) or ``max_duration_days`` is
   reached without a worthwhile effect; otherwise **CONTINUE** with the units still needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from abllm.analysis.result import (
    Comparison,
    Decision,
    GuardrailStatus,
    MetricResult,
    Recommendation,
    SrmResult,
)
from abllm.config import DecisionRule

ERROR_METRIC = "error_rate"
P95_METRIC = "p95_latency_ms"


@dataclass(frozen=True)
class DecisionInput:
    """What the rule looks at; built by the engine from the result."""

    rule: DecisionRule
    control: str
    treatments: Sequence[str]
    srm: SrmResult
    guardrails: Sequence[GuardrailStatus]
    primary: MetricResult | None
    metrics: Mapping[str, MetricResult]
    required_units: int | None = None  # per arm, from the power calculation
    elapsed_days: float | None = None


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%" if math.isfinite(x) else "n/a"


def _p(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "n/a"


def _effect(cmp: Comparison, rule: DecisionRule) -> float:
    return cmp.rel_lift if rule.mde_type == "relative" else cmp.diff


def _guard_problems(inp: DecisionInput, variant: str) -> list[str]:
    """Seed 001's promotion guards on point estimates: error rate and p95 latency vs control."""
    problems = []
    limits = (
        (ERROR_METRIC, inp.rule.max_error_rate_ratio, "error rate"),
        (P95_METRIC, inp.rule.max_p95_latency_ratio, "p95 latency"),
    )
    for name, limit, label in limits:
        metric = inp.metrics.get(name)
        if metric is None or variant not in metric.arms or inp.control not in metric.arms:
            continue
        t, c = metric.arms[variant].mean, metric.arms[inp.control].mean
        if not (math.isfinite(t) and math.isfinite(c)):
            continue
        if t > limit * c and not (t == 0 and c == 0):
            ratio = t / c if c > 0 else math.inf
            problems.append(f"its {label} is {ratio:.2f}x control's (limit {limit:g}x)")
    return problems


def _primary_p(cmp: Comparison) -> float:
    return cmp.p_value_adjusted


def recommend(inp: DecisionInput) -> Recommendation:
    """Apply the decision rule (see the module docstring) and say why."""
    rule = inp.rule
    concerned = set(inp.srm.arms)
    if inp.srm.flag and (
        not concerned or inp.control in concerned or set(inp.treatments) <= concerned
    ):
        observed = ", ".join(f"{k} {v:,}" for k, v in inp.srm.observed.items())
        expected = ", ".join(f"{k} {v:.0%}" for k, v in inp.srm.expected.items())
        return Recommendation(
            Decision.INVALID,
            None,
            f"sample ratio mismatch (p={_p(inp.srm.p_value)} < {rule.srm_p_value:g}): observed "
            f"{observed} units vs expected {expected}; fix assignment or exposure logging "
            "before reading any metric",
        )
    for g in inp.guardrails:
        if g.breached and g.action in ("pause", "rollback"):
            return Recommendation(Decision.PAUSE, g.variant, f"guardrail breached: {g.reason}")
    primary = inp.primary
    if primary is None:
        return Recommendation(
            Decision.CONTINUE,
            None,
            "no metric to decide on: give one metric `role: primary` in the experiment config",
        )
    arms = [inp.control, *inp.treatments]
    n_min = min((primary.arms[v].n if v in primary.arms else 0) for v in arms)
    needed = _needed(rule.min_units_per_arm, inp.required_units, n_min)
    if n_min < rule.min_units_per_arm:
        return Recommendation(
            Decision.CONTINUE,
            None,
            f"{n_min:,} units with {primary.name} data in the smallest arm; the rule needs "
            f"{rule.min_units_per_arm:,} per arm before deciding",
            needed,
        )
    return _decide_on_primary(inp, primary, n_min, needed)


def _needed(min_units: int, required: int | None, n_min: int) -> int | None:
    target = max(min_units, required or 0)
    if required is None and n_min >= min_units:
        return None
    return max(target - n_min, 0)


def _decide_on_primary(
    inp: DecisionInput, primary: MetricResult, n_min: int, needed: int | None
) -> Recommendation:
    rule = inp.rule
    cmps = {v: primary.comparisons[v] for v in inp.treatments if v in primary.comparisons}
    winners = [v for v, c in cmps.items() if c.significant and c.better(primary.direction)]
    losers = [v for v, c in cmps.items() if c.significant and not c.better(primary.direction)]
    blocked: dict[str, list[str]] = {}
    ship: list[str] = []
    for v in winners:
        # The MDE sizes the experiment; it is no threshold on the point estimate (a true
        # effect equal to the MDE has an estimate below it half of the time).
        problems = _guard_problems(inp, v)
        if problems:
            blocked[v] = problems
        else:
            ship.append(v)
    if ship:
        best = max(ship, key=lambda v: abs(_effect(cmps[v], rule)))
        c = cmps[best]
        return Recommendation(
            Decision.SHIP,
            best,
            f"{best} {'raises' if primary.direction == 'increase' else 'lowers'} "
            f"{primary.name} by {_pct(c.rel_lift)} (CI {_pct(c.rel_ci[0])} to "
            f"{_pct(c.rel_ci[1])}, p={_p(_primary_p(c))}) with {n_min:,}+ units per arm; "
            "error rate and p95 latency are within limits",
        )
    if blocked:
        v, problems = next(iter(blocked.items()))
        return Recommendation(
            Decision.KEEP_CONTROL,
            inp.control,
            f"{v} is better on {primary.name} ({_pct(cmps[v].rel_lift)}) but "
            + " and ".join(problems),
        )
    if losers and len(losers) == len(inp.treatments):
        return Recommendation(
            Decision.KEEP_CONTROL,
            inp.control,
            f"control is significantly better on {primary.name} than "
            + ", ".join(
                f"{v} ({_pct(cmps[v].rel_lift)}, p={_p(_primary_p(cmps[v]))})" for v in losers
            ),
        )
    planned = inp.required_units is not None and n_min >= inp.required_units
    expired = (
        rule.max_duration_days is not None
        and inp.elapsed_days is not None
        and inp.elapsed_days >= rule.max_duration_days
    )
    ps = ", ".join(f"{v} p={_p(_primary_p(c))}" for v, c in cmps.items())
    if planned or expired:
        why = (
            f"the planned {inp.required_units:,} units per arm"
            if planned and inp.required_units is not None
            else f"the {rule.max_duration_days:g}-day limit"
        )
        if losers:
            return Recommendation(
                Decision.KEEP_CONTROL,
                inp.control,
                f"reached {why}: no treatment beats control on {primary.name} and "
                f"{', '.join(losers)} is worse ({ps})",
            )
        return Recommendation(
            Decision.NO_DIFFERENCE,
            None,
            f"reached {why} without a significant difference on {primary.name} ({ps})",
        )
    if inp.required_units is None:
        tail = "set `decision.mde` to get a sample-size target"
    else:
        tail = f"about {needed or 0:,} more units per arm for {rule.power:.0%} power"
        if rule.mde is not None:
            tail += f" at MDE {rule.mde:g} ({rule.mde_type})"
    return Recommendation(
        Decision.CONTINUE,
        None,
        f"not significant yet on {primary.name} ({ps}); {tail}",
        needed,
    )
