"""Estimates under adaptive allocation (bandits): inverse-propensity weighting from the events.

When a bandit moves the weights, an arm's plain mean over-represents the periods in which it
was favoured, so with any trend over time it is biased, and the fixed-split tests do not hold.
Every exposure records the probability its unit had of its arm (``attrs.assign_p``, see
``abllm.assign.Assignment.probability``), so each arm's mean is estimated by the Hájek
inverse-propensity estimator μ̂_j = Σ_{u∈j} y_u/p_u / Σ_{u∈j} 1/p_u (Horvitz & Thompson 1952;
Hájek 1971) — unbiased for the mean over *all* units in the limit, whatever the allocation did
(the allocation depends on the past only through the recorded p). It is a ratio over units
(numerator y/p, denominator 1/p), so its standard error follows from the delta method like every
ratio metric. Units whose exposure recorded no probability are left out (counted in a warning);
when no unit recorded one, the arms keep their plain estimates (same warning).

For bandit experiments the fixed-split p-values (and ``significant``) are marked not
applicable (NaN / False); intervals of the difference are the delta-method ones of the IPW
estimates, for orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from abllm.analysis.dialects import Dialect
from abllm.analysis.result import ArmResult, MetricResult
from abllm.analysis.specs import MetricSpec
from abllm.analysis.sql import (
    Scope,
    events,
    exposure_key,
    exposure_row_key,
    first_time,
    first_variant,
    flagged_events,
    traces_cte,
    variant_name,
)
from abllm.analysis.summary_sql import unit_columns
from abllm.events import EventStore
from abllm.stats import RatioStats, TestConfig, compare

NAN = float("nan")
PROBABILITY_ATTR = "assign_p"


def ipw_sql(d: Dialect, relation: str, scope: Scope, spec: MetricSpec) -> tuple[str, list[str]]:
    """Per attributed variant: the Hájek sums of ``spec`` (``n, sx, sy, sxx, syy, sxy`` with
    x = y/p and y = 1/p) and ``missing``, units whose first exposure recorded no probability."""
    ev = events(d, relation, scope)
    key = exposure_row_key(d, scope)
    prob = f"coalesce({d.attr_text(PROBABILITY_ATTR)}, '')"
    first = (
        f"SELECT e.unit_id AS u, {exposure_key(d, scope)} AS k0, "  # noqa: S608
        f"{d.first_by(prob, key)} AS ptext FROM {ev} e "
        "WHERE e.type = 'exposure' AND e.variant_id IS NOT NULL GROUP BY e.unit_id"
    )
    ex = (
        f"SELECT f.u, {first_variant(d, 'f.k0')} AS xv, {first_time(d, 'f.k0')} AS t0, "  # noqa: S608
        f"{d.split_number('f.ptext', 1)} AS p FROM ({first}) f"
    )
    cols = unit_columns(d, 0, spec, [])
    source = flagged_events(d, relation, scope, [spec])
    pu = (
        f"SELECT ex.xv AS v, ex.p AS p, {', '.join(cols)} FROM {source} "  # noqa: S608
        f"JOIN ex ON e.unit_id = ex.u WHERE {d.epoch_us('e.ts')} >= ex.t0 "
        "GROUP BY ex.u, ex.xv, ex.p"
    )
    y = d.double("x0")
    ok = "c0 > 0 AND p > 0"
    x, w = f"(CASE WHEN {ok} THEN {y} / p END)", f"(CASE WHEN {ok} THEN 1.0 / p END)"
    aggs = [
        f"sum(CASE WHEN {ok} THEN 1 ELSE 0 END) AS n",
        f"sum({x}) AS sx",
        f"sum({w}) AS sy",
        f"sum({x} * {x}) AS sxx",
        f"sum({w} * {w}) AS syy",
        f"sum({x} * {w}) AS sxy",
        "sum(CASE WHEN c0 > 0 AND (p IS NULL OR p <= 0) THEN 1 ELSE 0 END) AS missing",
    ]
    sql = (
        f"WITH {traces_cte(d, relation, scope, [spec])}ex AS ({ex})\n"
        f"SELECT pu.v AS variant_id, {', '.join(aggs)} FROM ({pu}) pu GROUP BY pu.v"
    )
    return sql, ["variant_id", "n", "sx", "sy", "sxx", "syy", "sxy", "missing"]


def _f(x: object) -> float:
    return 0.0 if x is None else float(x)  # type: ignore[arg-type]


def not_applicable(metric: MetricResult) -> MetricResult:
    """``metric`` with its fixed-split p-values marked not applicable (module docstring)."""
    cmps = {
        v: replace(
            c,
            p_value=NAN,
            p_value_sequential=NAN,
            p_value_adjusted=NAN,
            significant=False,
            chance_to_win=NAN,
        )
        for v, c in metric.comparisons.items()
    }
    return replace(metric, comparisons=cmps)


def adaptive_metric(
    store: EventStore,
    d: Dialect,
    relation: str,
    scope: Scope,
    spec: MetricSpec,
    metric: MetricResult,
    control: str,
    treatments: Sequence[str],
    alpha: float,
) -> tuple[MetricResult, int]:
    """``metric`` with IPW arm estimates and intervals, p-values not applicable; and the
    number of units left out for lack of a recorded probability."""
    sql, names = ipw_sql(d, relation, scope, spec)
    rows = [dict(zip(names, r, strict=True)) for r in store.query(sql)]
    stats = {
        variant_name(scope, r["variant_id"]): RatioStats(
            _f(r["n"]), _f(r["sx"]), _f(r["sy"]), _f(r["sxx"]), _f(r["syy"]), _f(r["sxy"])
        )
        for r in rows
    }
    missing = int(sum(_f(r["missing"]) for r in rows))
    if missing and not any(_f(r["n"]) for r in rows):
        # No exposure recorded a probability (events from before it was recorded, or from an
        # importer): the plain arm estimates, still with the fixed-split tests not applicable.
        return not_applicable(metric), missing
    empty = RatioStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    cfg = TestConfig(alpha=alpha)
    ctl = stats.get(control, empty)
    arms = dict(metric.arms)
    cmps = dict(metric.comparisons)
    for v in treatments:
        c = compare(ctl, stats.get(v, empty), cfg)
        arms[v] = ArmResult(round(c.treatment.n), c.treatment.mean, c.treatment.ci, c.treatment.sd)
        arms[control] = ArmResult(round(c.control.n), c.control.mean, c.control.ci, c.control.sd)
        if v in cmps:
            cmps[v] = replace(cmps[v], diff=c.diff, diff_ci=c.diff_ci, rel_lift=c.rel_lift,
                              rel_ci=c.rel_ci, seq_diff_ci=(NAN, NAN), seq_rel_ci=(NAN, NAN),
                              error=None if c.error is None else str(c.error))  # fmt: skip
    return not_applicable(replace(metric, arms=arms, comparisons=cmps)), missing
