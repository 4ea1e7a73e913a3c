"""Compile metric specs into the SQL that runs inside the store.

(``noqa: S608`` below: the SQL is assembled from validated identifiers and dialect-quoted
literals; no user text reaches it unquoted.)

Statements per analysis (each returns one row per variant; Python never sees a raw event):

1. ``probe_sql``: which well-known columns have data, and the time span (once per analysis).
2. Only with quantile metrics: ``quantile_counts_sql`` (events per attributed variant, for
   the CI's levels) and ``quantile_sql`` (exact R-7 quantiles per attributed variant at
   those levels), both over the same unit-attributed relation.
3. ``summary_sql`` (module ``abllm.analysis.summary_sql``): every unit attributed to the
   variant of its first exposure, its events at or after it aggregated per unit, then per
   variant into sufficient statistics (n, Σ, Σ², Σxy), including, for quantile metrics, the
   per-unit counts of events at or below the variant's quantile that the unit-clustered CI
   needs.
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
    "SELECT trace_id, max(1) AS bad FROM {events} ev WHERE type = 'llm_call' "
    "AND error IS NOT NULL AND error <> 0 AND trace_id IS NOT NULL GROUP BY trace_id"
)


@dataclass(frozen=True)
class Scope:
    """Which events count: one experiment version, exposures from ``start``, events to ``until``."""

    experiment_id: str
    version: int
    start: datetime | None = None
    until: datetime | None = None
    variants: tuple[str, ...] = ()


#: Variant codes: the index in ``Scope.variants``; a variant not in the config gets ``UNKNOWN``.
UNKNOWN = 1023
_CODES = 1024


def variant_name(scope: Scope, code: object) -> str:
    """The variant id of a code returned by the SQL (``UNKNOWN_VARIANT`` when not configured)."""
    i = int(code)  # type: ignore[call-overload]
    return scope.variants[i] if 0 <= i < len(scope.variants) else UNKNOWN_VARIANT


UNKNOWN_VARIANT = "(not in config)"


def exposure_key(d: Dialect, scope: Scope) -> str:
    """Aggregate over a unit's events: its first exposure as one integer,
    ``epoch_us(ts) * 1024 + variant code``.

    ``min`` of it is the first exposure (ties on time go to the variant listed first in the
    config), an integer aggregate far cheaper than ``arg_min`` over (ts, variant) pairs.
    ``first_time``/``first_variant`` decode it.
    """
    exposure = "e.type = 'exposure' AND e.variant_id IS NOT NULL"
    return f"min(CASE WHEN {exposure} THEN {exposure_row_key(d, scope)} END)"


def exposure_row_key(d: Dialect, scope: Scope) -> str:
    """One exposure row's ``epoch_us(ts) * 1024 + variant code`` (see ``exposure_key``)."""
    whens = " ".join(f"WHEN {d.lit(v)} THEN {i}" for i, v in enumerate(scope.variants))
    code = f"(CASE e.variant_id {whens} ELSE {UNKNOWN} END)" if whens else str(UNKNOWN)
    return f"({d.epoch_us('e.ts')} * {_CODES} + {code})"


def first_time(d: Dialect, key: str) -> str:
    """Microseconds of the first exposure from ``exposure_key``."""
    return d.idiv(key, _CODES)


def first_variant(d: Dialect, key: str) -> str:
    """Variant code of the first exposure from ``exposure_key``."""
    return f"({key} - {d.idiv(key, _CODES)} * {_CODES})"


@dataclass(frozen=True)
class QuantileGroup:
    """Quantile metrics over the same values (e.g. latency p50/p95/p99) share one sort."""

    key: str
    specs: tuple[MetricSpec, ...]


def events(d: Dialect, relation: str, scope: Scope) -> str:
    """The experiment's events as an inline subquery.

    Inline rather than a CTE: a CTE read twice is materialised (every column of every event
    copied) by DuckDB and PostgreSQL, where a subquery is a cheap, projection-pushed scan.
    """
    return f"({_events_cte(d, relation, scope)})"


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


def needs_traces(specs: Sequence[MetricSpec]) -> bool:
    return any(s.exclude_errors and s.event != "llm_call" for s in specs)


def traces_cte(d: Dialect, relation: str, scope: Scope, specs: Sequence[MetricSpec]) -> str:
    if not needs_traces(specs):
        return ""
    return f"et AS ({_ERR_TRACES.format(events=events(d, relation, scope))}),\n"


def flagged_events(d: Dialect, relation: str, scope: Scope, specs: Sequence[MetricSpec]) -> str:
    """The events as a source aliased ``e``, joined to the errored traces (``et.bad``) when a
    metric excludes feedback and outcomes of failed calls.

    (Restricting the join to non-call rows with a UNION ALL was measured: no faster in DuckDB,
    whose cost here is reading ``trace_id``, so the plain join stays.)
    """
    ev = events(d, relation, scope)
    if not needs_traces(specs):
        return f"{ev} e"
    return f"{ev} e LEFT JOIN et ON e.trace_id = et.trace_id"


def condition(d: Dialect, spec: MetricSpec, traces: bool = True) -> str:
    """When an event carries data for ``spec``: right type, value present, not an error.

    ``traces=False`` leaves out the errored-trace test (for queries without the trace join).
    """
    parts = [f"e.type = {d.lit(spec.event)}" if spec.event else "e.type <> 'exposure'"]
    parts.append(f"{d.value(spec.value)} IS NOT NULL")
    if spec.exclude_errors:
        ok_call = "(e.error IS NULL OR e.error = 0)"
        ok_trace = "coalesce(et.bad, 0) = 0" if traces else "1 = 1"
        if spec.event == "llm_call":
            parts.append(ok_call)
        elif spec.event is not None:
            parts.append(ok_trace)
        else:
            parts.append(f"(CASE WHEN e.type = 'llm_call' THEN {ok_call} ELSE {ok_trace} END)")
    return "(" + " AND ".join(parts) + ")"


def quantile_groups(specs: Sequence[MetricSpec]) -> list[QuantileGroup]:
    """Group quantile specs that read the same values under the same filter."""
    groups: dict[tuple[object, ...], list[MetricSpec]] = {}
    for spec in specs:
        if spec.kind == "quantile":
            key = (spec.event, spec.value, spec.exclude_errors)
            groups.setdefault(key, []).append(spec)
    return [QuantileGroup(f"g{j}", tuple(g)) for j, g in enumerate(groups.values())]


def quantile_counts_sql(
    d: Dialect, relation: str, scope: Scope, groups: Sequence[QuantileGroup]
) -> tuple[str, list[str]]:
    """Events per attributed variant with data for each quantile group (``{g}_n``).

    The same unit-attributed relation and filter as :func:`quantile_sql`, so the count that
    places the CI's levels is the count of the events the quantiles are taken over (rows of
    ``llm_call`` with their own ``variant_id`` NULL, or relabelled by the holdback view, are
    attributed through their unit's first exposure like every other event).
    """
    aggs = [
        f"sum(CASE WHEN {condition(d, g.specs[0])} THEN 1 ELSE 0 END) AS {g.key}_n" for g in groups
    ]
    sql = _attributed(d, relation, scope, groups, aggs, [f"{g.key}_n" for g in groups])
    return sql, ["variant_id", *(f"{g.key}_n" for g in groups)]


def _attributed(
    d: Dialect,
    relation: str,
    scope: Scope,
    groups: Sequence[QuantileGroup],
    aggs: Sequence[str],
    cols: Sequence[str],
) -> str:
    """``aggs`` per attributed variant over the quantile groups' events (one row per variant).

    Events are attributed to their unit's first exposure (a join of the quantile metrics'
    events to the units' exposures) and count from that exposure on.
    """
    all_specs = [s for g in groups for s in g.specs]
    conds = [condition(d, g.specs[0]) for g in groups]
    ev = events(d, relation, scope)
    source = flagged_events(d, relation, scope, all_specs)
    first = (
        f"SELECT e.unit_id AS u, {exposure_key(d, scope)} AS k0 FROM {ev} e "  # noqa: S608
        "WHERE e.type = 'exposure' AND e.variant_id IS NOT NULL GROUP BY e.unit_id"
    )
    ex = (
        f"SELECT f.u, {first_variant(d, 'f.k0')} AS xv, "  # noqa: S608
        f"{first_time(d, 'f.k0')} AS t0 FROM ({first}) f"
    )
    inner = (
        f"SELECT ex.xv AS v, {', '.join(aggs)}\n"  # noqa: S608
        f"  FROM {source} JOIN ex ON e.unit_id = ex.u\n"
        f"  WHERE {d.epoch_us('e.ts')} >= ex.t0 AND ({' OR '.join(conds)}) GROUP BY ex.xv"
    )
    return (
        f"WITH {traces_cte(d, relation, scope, all_specs)}ex AS ({ex})\n"
        f"SELECT qa.v AS variant_id, {', '.join(cols)} FROM ({inner}) qa ORDER BY qa.v"
    )


def quantile_sql(
    d: Dialect,
    relation: str,
    scope: Scope,
    groups: Sequence[QuantileGroup],
    levels: Sequence[Sequence[float]],
) -> tuple[str, list[str]]:
    """Exact R-7 quantiles per attributed variant: group ``j`` at each of ``levels[j]``.

    Events are attributed to their unit's first exposure (a join of the quantile metrics'
    events to the units' exposures). Returns the SQL and its column names: ``variant_id`` (a
    variant code, see ``variant_name``), then ``{g}_q{r}`` for level ``r`` of group ``g``.
    """
    aggs, cols, names = [], [], ["variant_id"]
    for g, group_levels in zip(groups, levels, strict=True):
        cond = condition(d, g.specs[0])
        x = f"CASE WHEN {cond} THEN {d.double(d.value(g.specs[0].value))} END"
        aggs.append(f"{d.quantiles(x, group_levels)} AS {g.key}_a")
        for r in range(len(group_levels)):
            cols.append(f"{d.item(f'{g.key}_a', r + 1)} AS {g.key}_q{r}")
            names.append(f"{g.key}_q{r}")
    return _attributed(d, relation, scope, groups, aggs, cols), names
