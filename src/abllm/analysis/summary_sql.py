"""The summary statement: per-unit aggregation in one pass, then sufficient statistics per variant.

One pass groups every event of the experiment by unit and computes the unit's first exposure
(``exposure_key``: variant and time as one integer) in the same pass, so no join of all events
to the exposures is needed. Units with an event before their first exposure (rare: clock skew,
feedback logged early) are "dirty": for them alone a second, small pass recomputes the
aggregates from the events at or after ``t0``. Column names: per unit ``c{i}`` (events with
data), ``x{i}``/``y{i}`` (values), ``b{i}_{j}`` (quantile indicators for arm ``j``); per
variant ``m{i}_*``.

(``noqa: S608``: identifiers are validated config names and literals are dialect-quoted.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from abllm.analysis.dialects import Dialect
from abllm.analysis.specs import MetricSpec
from abllm.analysis.sql import (
    Scope,
    condition,
    exposure_key,
    first_time,
    first_variant,
    flagged_events,
    traces_cte,
)

#: Per quantile metric (by index in ``specs``): the quantile of each variant, the threshold of
#: the per-unit "events at or below" counts of the clustered CI.
Thresholds = Mapping[int, Mapping[str, float]]


def unit_columns(d: Dialect, i: int, spec: MetricSpec, arms: Sequence[float]) -> list[str]:
    """Per-unit aggregates of metric ``i``: ``c{i}`` events with data, then its values."""
    cond, val = condition(d, spec), d.value(spec.value)
    has = f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)"
    cols = [f"{has} AS c{i}"]
    if spec.kind == "mean":
        agg = {
            "sum": f"sum(CASE WHEN {cond} THEN {val} END)",
            "mean": f"avg(CASE WHEN {cond} THEN {val} END)",
            "count": d.double(has),
            "max": f"max(CASE WHEN {cond} THEN {val} END)",
            "last": d.last(val, cond),
        }[spec.aggregation]
        cols.append(f"{agg} AS x{i}")
    elif spec.kind == "proportion":
        success = f"(CASE WHEN {val} <> 0 THEN 1 ELSE 0 END)"
        cols.append(f"max(CASE WHEN {cond} THEN {success} END) AS x{i}")
    elif spec.kind == "ratio":
        cols.append(f"sum(CASE WHEN {cond} THEN {val} ELSE 0 END) AS x{i}")
        if spec.denominator is not None:
            den = d.value(spec.denominator)
            cols.append(f"sum(CASE WHEN {cond} THEN coalesce({den}, 0) ELSE 0 END) AS y{i}")
        else:
            cols.append(f"{d.double(has)} AS y{i}")
    else:
        # One count per variant's threshold: the unit's own variant is only known per group,
        # so every threshold is counted and the summary keeps the matching one per variant.
        for j, q in enumerate(arms):
            if not math.isfinite(q):  # no quantile for this arm: nothing to count
                cols.append(f"0 AS b{i}_{j}")
                continue
            below = f"{cond} AND {val} <= {d.num(q)}"
            cols.append(f"sum(CASE WHEN {below} THEN 1 ELSE 0 END) AS b{i}_{j}")
    return cols


def _variant_columns(d: Dialect, i: int, spec: MetricSpec, arms: int) -> list[str]:
    """Per-variant sufficient statistics of metric ``i`` over units (named ``m{i}_*``)."""
    has = f"c{i} > 0"
    n = "count(*)" if spec.fill_missing else f"sum(CASE WHEN {has} THEN 1 ELSE 0 END)"
    cols = [f"{n} AS m{i}_n"]
    if spec.kind in ("mean", "proportion"):
        fill = "0" if spec.fill_missing else "NULL"
        y = f"(CASE WHEN {has} THEN {d.double(f'x{i}')} ELSE {fill} END)"
        cols += [f"sum({y}) AS m{i}_s", f"sum({y} * {y}) AS m{i}_ss"]
        cols.append(f"{d.var_samp(y)} AS m{i}_v")
    elif spec.kind == "ratio":
        x = f"(CASE WHEN {has} THEN {d.double(f'x{i}')} ELSE 0 END)"
        y = f"(CASE WHEN {has} THEN {d.double(f'y{i}')} ELSE 0 END)"
        cols += [
            f"sum({x}) AS m{i}_sx",
            f"sum({y}) AS m{i}_sy",
            f"sum({x} * {x}) AS m{i}_sxx",
            f"sum({y} * {y}) AS m{i}_syy",
            f"sum({x} * {y}) AS m{i}_sxy",
        ]
        # Central moments over the units counted in n (NULL elsewhere, which the aggregates skip).
        keep = "0" if spec.fill_missing else "NULL"
        xn = f"(CASE WHEN {has} THEN {d.double(f'x{i}')} ELSE {keep} END)"
        yn = f"(CASE WHEN {has} THEN {d.double(f'y{i}')} ELSE {keep} END)"
        cols += [
            f"{d.var_samp(xn)} AS m{i}_vx",
            f"{d.var_samp(yn)} AS m{i}_vy",
            f"{d.covar_samp(xn, yn)} AS m{i}_cxy",
        ]
    else:  # quantile: events per unit (Σm, Σm²) and the indicator sums for each threshold
        cols += [f"sum(c{i}) AS m{i}_events", f"sum(c{i} * c{i}) AS m{i}_mm"]
        for j in range(arms):
            b = f"b{i}_{j}"
            cols += [f"sum({b}) AS m{i}_b{j}", f"sum({b} * {b}) AS m{i}_bb{j}"]
            cols.append(f"sum({b} * c{i}) AS m{i}_bm{j}")
    return cols


def _alias(col: str) -> str:
    return col.rsplit(" AS ", 1)[1]


def summary_sql(
    d: Dialect,
    relation: str,
    scope: Scope,
    specs: Sequence[MetricSpec],
    thresholds: Thresholds | None = None,
) -> tuple[str, list[str], list[str]]:
    """One row per variant: units, then each metric's sufficient statistics.

    Returns the SQL, its column names and the arm order of the quantile indicator columns
    (``m{i}_b{j}`` belongs to arm ``arms[j]``). ``variant_id`` comes back as a variant code
    (``abllm.analysis.sql.variant_name``).
    """
    thresholds = thresholds or {}
    arms = sorted({a for t in thresholds.values() for a in t})
    unit_cols: list[str] = []
    variant_cols: list[str] = []
    for i, spec in enumerate(specs):
        own = thresholds.get(i, {})
        levels = [own.get(a, float("nan")) for a in arms] if spec.kind == "quantile" else []
        unit_cols += unit_columns(d, i, spec, levels)
        variant_cols += _variant_columns(d, i, spec, len(levels))
    names = [_alias(c) for c in unit_cols]
    source = flagged_events(d, relation, scope, specs)
    t_ev = d.epoch_us("e.ts")
    first = [
        f"{exposure_key(d, scope)} AS k0",
        f"min(CASE WHEN e.type <> 'exposure' THEN {t_ev} END) AS tmin",
    ]
    per_unit = ",\n    ".join(unit_cols) if unit_cols else "0 AS c_none"
    names = names or ["c_none"]
    kept = ", ".join(f"agg.{n}" for n in names)
    fixed = ", ".join(f"fix.{n}" for n in names)
    per_variant = ",\n  ".join(["v AS variant_id", "count(*) AS units", *variant_cols])
    t0, t0_agg = first_time(d, "k0"), first_time(d, "agg.k0")
    sql = (
        f"WITH {traces_cte(d, relation, scope, specs)}"  # noqa: S608
        f"agg AS (SELECT e.unit_id AS u, {', '.join(first)},\n    {per_unit}\n"
        f"  FROM {source} GROUP BY e.unit_id),\n"
        f"dirty AS (SELECT u, {first_variant(d, 'k0')} AS xv, {t0} AS t0 FROM agg\n"
        f"  WHERE k0 IS NOT NULL AND tmin < {t0}),\n"
        f"fix AS (SELECT e.unit_id AS u,\n    {per_unit}\n"
        f"  FROM {source} JOIN dirty ON e.unit_id = dirty.u\n"
        f"  WHERE {t_ev} >= dirty.t0 GROUP BY e.unit_id),\n"
        f"pu AS (SELECT {first_variant(d, 'agg.k0')} AS v, {kept} FROM agg\n"
        f"  WHERE agg.k0 IS NOT NULL AND (agg.tmin IS NULL OR agg.tmin >= {t0_agg})\n"
        f"  UNION ALL SELECT dirty.xv AS v, {fixed} FROM fix JOIN dirty ON fix.u = dirty.u)\n"
        f"SELECT\n  {per_variant}\nFROM pu GROUP BY v ORDER BY v"
    )
    return sql, ["variant_id", "units", *(_alias(c) for c in variant_cols)], arms
