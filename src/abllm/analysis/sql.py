"""Compile metric specs into the SQL that runs inside the store.

(``noqa: S608`` below: the SQL is assembled from validated identifiers and dialect-quoted
literals; no user text reaches it unquoted.)

Two statements per analysis, each one pass of the engine over the experiment's events:

1. ``summary_sql``: every unit is attributed to the variant of its first exposure; its events at
   or after that exposure are aggregated per unit (sum, mean, count, max, last, any, or a
   numerator/denominator pair), then per variant into sufficient statistics (n, Σ, Σ², Σxy).
2. ``quantile_sql``: per variant the exact R-7 quantiles of each quantile metric at the
   probabilities the clustered CI needs, and per unit how many of its events fall at or below
   the variant's quantile (sums over units of those counts: the ratio statistics of the
   unit-clustered quantile CI).

Python never sees a raw event: only one row per variant comes back from each statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from abllm.analysis.dialects import Dialect
from abllm.analysis.specs import WELL_KNOWN_FIELDS, MetricSpec

#: The errored-trace flag: feedback/outcome events on a failed call's trace are excluded from
#: quality metrics (seed 000, "LLM errors disproportionately affect one variant").
_ERR_TRACES = (
    "SELECT trace_id, max(1) AS bad FROM ev WHERE type = 'llm_call' AND error IS NOT NULL "
    "AND error <> 0 AND trace_id IS NOT NULL GROUP BY trace_id"
)


@dataclass(frozen=True)
class Scope:
    """Which events count: one experiment version, exposures from ``start``, events to ``until``."""

    experiment_id: str
    version: int
    start: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class QuantileGroup:
    """Quantile metrics over the same values (e.g. latency p50/p95/p99) share one sort."""

    key: str
    specs: tuple[MetricSpec, ...]


def _events_cte(d: Dialect, relation: str, scope: Scope) -> str:
    conds = [
        f"experiment_id = {d.lit(scope.experiment_id)}",
        f"experiment_version = {int(scope.version)}",
    ]
    if scope.start is not None:
        conds.append(f"ts >= {d.ts(scope.start)}")
    if scope.until is not None:
        conds.append(f"ts <= {d.ts(scope.until)}")
    return f"SELECT * FROM {relation} WHERE {' AND '.join(conds)}"  # noqa: S608


def probe_sql(d: Dialect, relation: str, scope: Scope) -> tuple[str, list[str]]:
    """Non-null counts of each well-known column (``n_<column>``), of llm_call events
    (``n_llm_call``), and the first exposure / last event times (``t_first``, ``t_last``)."""
    fields = sorted(WELL_KNOWN_FIELDS)
    cols = [f"count({f}) AS n_{f}" for f in fields]
    cols += [
        "sum(CASE WHEN type = 'llm_call' THEN 1 ELSE 0 END) AS n_llm_call",
        "min(CASE WHEN type = 'exposure' THEN ts END) AS t_first",
        "max(ts) AS t_last",
    ]
    names = [f"n_{f}" for f in fields] + ["n_llm_call", "t_first", "t_last"]
    sql = f"SELECT {', '.join(cols)} FROM ({_events_cte(d, relation, scope)}) ev"  # noqa: S608
    return sql, names


def _needs_traces(specs: Sequence[MetricSpec]) -> bool:
    return any(s.exclude_errors and s.event != "llm_call" for s in specs)


def _prelude(d: Dialect, relation: str, scope: Scope, specs: Sequence[MetricSpec]) -> str:
    ctes = [f"ev AS ({_events_cte(d, relation, scope)})", f"ex AS ({d.first_exposure('ev')})"]
    if _needs_traces(specs):
        ctes.append(f"et AS ({_ERR_TRACES})")
    return "WITH " + ",\n".join(ctes)


def _joins(specs: Sequence[MetricSpec]) -> str:
    sql = "FROM ex JOIN ev e ON e.unit_id = ex.unit_id"
    if _needs_traces(specs):
        sql += " LEFT JOIN et ON e.trace_id = et.trace_id"
    return sql + " WHERE e.ts >= ex.t0"


def condition(d: Dialect, spec: MetricSpec) -> str:
    """When an event carries data for ``spec``: right type, value present, not an error."""
    parts = [f"e.type = {d.lit(spec.event)}" if spec.event else "e.type <> 'exposure'"]
    parts.append(f"{d.value(spec.value)} IS NOT NULL")
    if spec.exclude_errors:
        ok_call = "(e.error IS NULL OR e.error = 0)"
        ok_trace = "coalesce(et.bad, 0) = 0"
        if spec.event == "llm_call":
            parts.append(ok_call)
        elif spec.event is not None:
            parts.append(ok_trace)
        else:
            parts.append(f"(CASE WHEN e.type = 'llm_call' THEN {ok_call} ELSE {ok_trace} END)")
    return "(" + " AND ".join(parts) + ")"


def _unit_columns(d: Dialect, i: int, spec: MetricSpec) -> list[str]:
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
        cols.append(
            f"max(CASE WHEN {cond} THEN (CASE WHEN {val} <> 0 THEN 1 ELSE 0 END) END) AS x{i}"
        )
    elif spec.kind == "ratio":
        cols.append(f"sum(CASE WHEN {cond} THEN {val} ELSE 0 END) AS x{i}")
        if spec.denominator is not None:
            den = d.value(spec.denominator)
            cols.append(f"sum(CASE WHEN {cond} THEN coalesce({den}, 0) ELSE 0 END) AS y{i}")
        else:
            cols.append(f"{d.double(has)} AS y{i}")
    return cols


def _variant_columns(d: Dialect, i: int, spec: MetricSpec) -> list[str]:
    """Per-variant sufficient statistics of metric ``i`` over units (named ``m{i}_*``)."""
    has = f"c{i} > 0"
    n = "count(*)" if spec.fill_missing else f"sum(CASE WHEN {has} THEN 1 ELSE 0 END)"
    cols = [f"{n} AS m{i}_n"]
    if spec.kind in ("mean", "proportion"):
        fill = "0" if spec.fill_missing else "NULL"
        y = f"(CASE WHEN {has} THEN {d.double(f'x{i}')} ELSE {fill} END)"
        cols += [f"sum({y}) AS m{i}_s", f"sum({y} * {y}) AS m{i}_ss"]
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
    else:  # quantile: events with data, for the CI's probabilities
        cols += [f"sum(c{i}) AS m{i}_events"]
    return cols


def summary_columns(specs: Sequence[MetricSpec]) -> list[str]:
    """Names of the columns ``summary_sql`` returns, in order."""
    names = ["variant_id", "units"]
    for i, spec in enumerate(specs):
        names.append(f"m{i}_n")
        if spec.kind in ("mean", "proportion"):
            names += [f"m{i}_s", f"m{i}_ss"]
        elif spec.kind == "ratio":
            names += [f"m{i}_sx", f"m{i}_sy", f"m{i}_sxx", f"m{i}_syy", f"m{i}_sxy"]
        else:
            names.append(f"m{i}_events")
    return names


def summary_sql(d: Dialect, relation: str, scope: Scope, specs: Sequence[MetricSpec]) -> str:
    """One row per variant: units, then each metric's sufficient statistics."""
    unit_cols: list[str] = []
    variant_cols: list[str] = []
    for i, spec in enumerate(specs):
        unit_cols += _unit_columns(d, i, spec)
        variant_cols += _variant_columns(d, i, spec)
    per_unit = ",\n    ".join(["ex.xv AS v", "ex.unit_id AS u", *unit_cols])
    per_variant = ",\n  ".join(["v AS variant_id", "count(*) AS units", *variant_cols])
    return (
        f"{_prelude(d, relation, scope, specs)},\n"
        f"pu AS (SELECT\n    {per_unit}\n  {_joins(specs)}\n  GROUP BY ex.xv, ex.unit_id)\n"
        f"SELECT\n  {per_variant}\nFROM pu GROUP BY v ORDER BY v"
    )


def quantile_groups(specs: Sequence[MetricSpec]) -> list[QuantileGroup]:
    """Group quantile specs that read the same values under the same filter."""
    groups: dict[tuple[object, ...], list[MetricSpec]] = {}
    for spec in specs:
        if spec.kind == "quantile":
            key = (spec.event, spec.value, spec.exclude_errors)
            groups.setdefault(key, []).append(spec)
    return [QuantileGroup(f"g{j}", tuple(g)) for j, g in enumerate(groups.values())]


def quantile_sql(
    d: Dialect,
    relation: str,
    scope: Scope,
    groups: Sequence[QuantileGroup],
    probs: Sequence[Sequence[Sequence[float]]],
) -> tuple[str, list[str]]:
    """Quantiles per variant at ``probs[j]`` for group ``j`` and the clustered indicator sums.

    ``probs[j][k]`` for each spec ``k`` of group ``j`` is the spec's own quantile first
    (the indicator threshold), then any others the CI needs. Returns the SQL and its column
    names: ``variant_id``, then per group ``{g}_units``, ``{g}_m``, ``{g}_mm`` (events per unit:
    Σ, Σ²), and per spec ``{g}_{k}_s``, ``{g}_{k}_ss``, ``{g}_{k}_sm`` (indicator sums) and
    ``{g}_{k}_q{r}`` the quantile at ``probs[j][k][r]``.
    """
    all_specs = [s for g in groups for s in g.specs]
    xs, conds, aggs, unit_cols, sum_cols, q_cols = [], [], [], [], [], []
    sum_names: list[str] = []
    q_names: list[str] = []
    for g, group_probs in zip(groups, probs, strict=True):
        cond = condition(d, g.specs[0])
        conds.append(cond)
        x = f"{g.key}_x"
        xs.append(f"CASE WHEN {cond} THEN {d.double(d.value(g.specs[0].value))} END AS {x}")
        flat = [p for spec_probs in group_probs for p in spec_probs]
        aggs.append(f"{d.quantiles(x, flat)} AS {g.key}_a")
        m = f"{g.key}_m"
        unit_cols.append(f"sum(CASE WHEN qe.{x} IS NOT NULL THEN 1 ELSE 0 END) AS {m}")
        # ``a_`` aliases: ClickHouse resolves an alias equal to a column name inside sum().
        sum_cols += [
            f"sum(CASE WHEN {m} > 0 THEN 1 ELSE 0 END) AS a_{g.key}_units",
            f"sum({m}) AS a_{m}",
            f"sum({m} * {m}) AS a_{m}m",
        ]
        sum_names += [f"{g.key}_units", m, f"{m}m"]
        offset = 0
        for k, spec_probs in enumerate(group_probs):
            s = f"{g.key}_{k}_s"
            threshold = d.item(f"qs.{g.key}_a", offset + 1)
            unit_cols.append(f"sum(CASE WHEN qe.{x} <= {threshold} THEN 1 ELSE 0 END) AS {s}")
            sum_cols += [
                f"sum({s}) AS a_{s}",
                f"sum({s} * {s}) AS a_{s}s",
                f"sum({s} * {m}) AS a_{s}m",
            ]
            sum_names += [s, f"{s}s", f"{s}m"]
            for r in range(len(spec_probs)):
                col = f"{g.key}_{k}_q{r}"
                q_cols.append(f"{d.item(f'qs.{g.key}_a', offset + r + 1)} AS {col}")
                q_names.append(col)
            offset += len(spec_probs)
    sql = (
        f"{_prelude(d, relation, scope, all_specs)},\n"  # noqa: S608
        f"qe AS (SELECT ex.xv AS v, e.unit_id AS u, {', '.join(xs)}\n"
        f"  {_joins(all_specs)} AND ({' OR '.join(conds)})),\n"
        f"qs AS (SELECT v, {', '.join(aggs)} FROM qe GROUP BY v),\n"
        f"pu AS (SELECT qe.v AS v, qe.u AS u, {', '.join(unit_cols)}\n"
        "  FROM qe JOIN qs ON qe.v = qs.v GROUP BY qe.v, qe.u),\n"
        f"agg AS (SELECT v, {', '.join(sum_cols)} FROM pu GROUP BY v)\n"
        f"SELECT agg.v AS variant_id, {', '.join(f'agg.a_{n} AS {n}' for n in sum_names)}, "
        f"{', '.join(q_cols)}\nFROM agg JOIN qs ON agg.v = qs.v ORDER BY agg.v"
    )
    return sql, ["variant_id", *sum_names, *q_names]
