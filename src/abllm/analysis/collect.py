"""Run the analysis SQL in the store and turn its few rows into the stats engine's summaries.

This is the only module that sends analysis SQL to the store. Without quantile metrics it is one
statement (``summary_sql``); with them, first the events per variant (for the CI's levels) and
the quantiles per variant, then the summary, which also counts each unit's events at or below
its variant's quantile. Every statement returns one row per variant, never a raw event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from abllm.analysis.dialects import Dialect, dialect_for
from abllm.analysis.specs import MetricSpec
from abllm.analysis.sql import (
    Scope,
    quantile_counts_sql,
    quantile_groups,
    quantile_sql,
    variant_name,
)
from abllm.analysis.summary_sql import summary_sql
from abllm.events import EventStore
from abllm.stats.quantiles import QuantileStats, quantile_bound_levels
from abllm.stats.summaries import MeanStats, ProportionStats, RatioStats

Summary = MeanStats | ProportionStats | RatioStats | QuantileStats
NAN = float("nan")


@dataclass(frozen=True)
class MetricData:
    """One metric's summaries per variant (variants without any unit are absent)."""

    spec: MetricSpec
    arms: dict[str, Summary]

    @property
    def has_data(self) -> bool:
        """Whether any unit of any variant has a value for this metric."""
        return any(_n(s) > 0 for s in self.arms.values())


@dataclass(frozen=True)
class Collected:
    """What the store returned: units per variant (as attributed) and per-metric summaries."""

    units: dict[str, int]
    metrics: list[MetricData] = field(default_factory=list)


@dataclass(frozen=True)
class _Quantiles:
    """Per quantile metric (index in specs) and variant: its quantiles and ``n_star``."""

    values: dict[int, dict[str, dict[float, float]]]
    n_star: dict[int, dict[str, float]]

    def thresholds(self, specs: Sequence[MetricSpec]) -> dict[int, dict[str, float]]:
        return {
            i: {v: at[float(specs[i].quantile or 0.5)] for v, at in by_arm.items()}
            for i, by_arm in self.values.items()
        }


def _f(value: Any) -> float:
    """A SQL aggregate as a float: NULL (no rows) is 0; Decimal/int/float converted."""
    return 0.0 if value is None else float(value)


def _n(summary: Summary) -> float:
    if isinstance(summary, QuantileStats):
        return float(summary.n_events)
    return float(summary.n)


def _levels(level: float, n_events: float) -> tuple[float, float]:
    lo, hi = quantile_bound_levels(level, n_events)
    return float(lo), float(hi)


def _quantiles(
    store: EventStore, d: Dialect, relation: str, scope: Scope, specs: Sequence[MetricSpec]
) -> _Quantiles:
    """Quantiles per variant at each metric's level and at its CI levels (two statements)."""
    groups = quantile_groups(specs)
    if not groups:
        return _Quantiles({}, {})
    index = {id(s): i for i, s in enumerate(specs)}
    sql, names = quantile_counts_sql(d, relation, scope, groups)
    counts = [dict(zip(names, r, strict=True)) for r in store.query(sql)]
    n_star: dict[int, dict[str, float]] = {}
    levels: list[list[float]] = []
    for g in groups:
        wanted: set[float] = set()
        for s in g.specs:
            level = float(s.quantile or 0.5)
            per_arm = {variant_name(scope, r["variant_id"]): _f(r[f"{g.key}_n"]) for r in counts}
            n_star[index[id(s)]] = per_arm
            wanted.add(level)
            for n in per_arm.values():
                wanted.update(p for p in _levels(level, n) if 0.0 <= p <= 1.0)
        levels.append(sorted(wanted))
    sql, names = quantile_sql(d, relation, scope, groups, levels)
    values: dict[int, dict[str, dict[float, float]]] = {}
    for r in store.query(sql):
        row = dict(zip(names, r, strict=True))
        v = variant_name(scope, row["variant_id"])
        for g, group_levels in zip(groups, levels, strict=True):
            at = {p: _value(row[f"{g.key}_q{j}"]) for j, p in enumerate(group_levels)}
            for s in g.specs:
                values.setdefault(index[id(s)], {})[v] = at
    return _Quantiles(values, n_star)


def _value(x: Any) -> float:
    return NAN if x is None else float(x)


def _quantile_summary(
    spec: MetricSpec, i: int, row: Mapping[str, Any], arms: Sequence[str], q: _Quantiles
) -> QuantileStats:
    v = str(row["variant_id"])
    level = float(spec.quantile or 0.5)
    n_star = q.n_star.get(i, {}).get(v, 0.0)
    at = q.values.get(i, {}).get(v, {})
    lo, hi = _levels(level, n_star)
    p = f"m{i}_"
    j = arms.index(v) if v in arms else -1

    def b(kind: str) -> float:
        return _f(row[f"{p}{kind}{j}"]) if j >= 0 else 0.0

    events = _f(row[p + "events"])
    return QuantileStats(
        level=level,
        n_events=events,
        estimate=at.get(level, NAN),
        lower=at.get(lo, NAN),
        upper=at.get(hi, NAN),
        cluster=RatioStats(
            n=_f(row[p + "n"]),
            sum_num=b("b"),
            sum_den=events,
            sum_num_sq=b("bb"),
            sum_den_sq=_f(row[p + "mm"]),
            sum_num_den=b("bm"),
        ),
        # No count where the summary has events is an error code (NO_EVENT_COUNT), not a
        # silent stand-in: the CI's levels were placed from that count.
        n_star=n_star,
    )


def _summary(
    spec: MetricSpec, i: int, row: Mapping[str, Any], arms: Sequence[str], q: _Quantiles
) -> Summary:
    p = f"m{i}_"
    n = _f(row[p + "n"])

    def central(key: str) -> float:
        """(n − 1) × the store's stable sample (co)variance: a central sum (0 for n < 2)."""
        return _f(row[p + key]) * (n - 1.0) if n >= 2 else 0.0

    if spec.kind == "mean":
        return MeanStats(n=n, sum=_f(row[p + "s"]), sum_sq=_f(row[p + "ss"]), m2=central("v"))
    if spec.kind == "proportion":
        return ProportionStats(n=n, successes=_f(row[p + "s"]))
    if spec.kind == "ratio":
        return RatioStats(
            n=n,
            sum_num=_f(row[p + "sx"]),
            sum_den=_f(row[p + "sy"]),
            sum_num_sq=_f(row[p + "sxx"]),
            sum_den_sq=_f(row[p + "syy"]),
            sum_num_den=_f(row[p + "sxy"]),
            m2_num=central("vx"),
            m2_den=central("vy"),
            c_num_den=central("cxy"),
        )
    return _quantile_summary(spec, i, row, arms, q)


def collect(
    store: EventStore,
    scope: Scope,
    specs: Sequence[MetricSpec],
    dialect: Dialect | None = None,
) -> Collected:
    """Sufficient statistics of ``specs`` per variant, computed inside ``store``."""
    d = dialect or dialect_for(store.dialect)
    relation = getattr(store, "events_relation", "abllm_events")
    for setup in d.session_setup:
        store.query(setup)
    q = _quantiles(store, d, relation, scope, specs)
    thresholds = {
        i: {v: x for v, x in by_arm.items() if math.isfinite(x)}
        for i, by_arm in q.thresholds(specs).items()
    }
    sql, names, arms = summary_sql(d, relation, scope, specs, thresholds)
    rows = [dict(zip(names, r, strict=True)) for r in store.query(sql)]
    for row in rows:
        row["variant_id"] = variant_name(scope, row["variant_id"])
    per_metric: list[dict[str, Summary]] = [{} for _ in specs]
    for row in rows:
        for i, spec in enumerate(specs):
            per_metric[i][str(row["variant_id"])] = _summary(spec, i, row, arms, q)
    return Collected(
        units={str(r["variant_id"]): int(_f(r["units"])) for r in rows},
        metrics=[MetricData(spec, arms) for spec, arms in zip(specs, per_metric, strict=True)],
    )
