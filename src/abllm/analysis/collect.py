"""Run the analysis SQL in the store and turn its few rows into the stats engine's summaries.

This is the only module that talks to the store. It sends at most two statements (see
``abllm.analysis.sql``) and receives one row per variant from each: per metric the sufficient
statistics the engine needs, never a raw event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from abllm.analysis.dialects import Dialect, dialect_for
from abllm.analysis.specs import MetricSpec
from abllm.analysis.sql import Scope, quantile_groups, quantile_sql, summary_columns, summary_sql
from abllm.events import EventStore
from abllm.stats.quantiles import QuantileStats, quantile_bound_levels
from abllm.stats.summaries import MeanStats, ProportionStats, RatioStats

Summary = MeanStats | ProportionStats | RatioStats | QuantileStats


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


def _f(value: Any) -> float:
    """A SQL aggregate as a float: NULL (no rows) is 0; Decimal/int/float converted."""
    return 0.0 if value is None else float(value)


def _n(summary: Summary) -> float:
    if isinstance(summary, QuantileStats):
        return float(summary.n_events)
    return float(summary.n)


def _summary(spec: MetricSpec, i: int, row: dict[str, Any]) -> Summary | int:
    p = f"m{i}_"
    if spec.kind == "mean":
        return MeanStats(n=_f(row[p + "n"]), sum=_f(row[p + "s"]), sum_sq=_f(row[p + "ss"]))
    if spec.kind == "proportion":
        return ProportionStats(n=_f(row[p + "n"]), successes=_f(row[p + "s"]))
    if spec.kind == "ratio":
        return RatioStats(
            n=_f(row[p + "n"]),
            sum_num=_f(row[p + "sx"]),
            sum_den=_f(row[p + "sy"]),
            sum_num_sq=_f(row[p + "sxx"]),
            sum_den_sq=_f(row[p + "syy"]),
            sum_num_den=_f(row[p + "sxy"]),
        )
    return int(_f(row[p + "events"]))  # quantile: events with data, completed later


def collect(
    store: EventStore,
    scope: Scope,
    specs: Sequence[MetricSpec],
    dialect: Dialect | None = None,
) -> Collected:
    """Sufficient statistics of ``specs`` per variant, computed inside ``store``."""
    d = dialect or dialect_for(store.dialect)
    relation = getattr(store, "events_relation", "abllm_events")
    names = summary_columns(specs)
    rows = [
        dict(zip(names, r, strict=True))
        for r in store.query(summary_sql(d, relation, scope, specs))
    ]
    units = {str(r["variant_id"]): int(_f(r["units"])) for r in rows}
    per_metric: list[dict[str, Summary]] = [{} for _ in specs]
    events: dict[tuple[int, str], int] = {}
    for row in rows:
        v = str(row["variant_id"])
        for i, spec in enumerate(specs):
            s = _summary(spec, i, row)
            if isinstance(s, int):
                events[(i, v)] = s
            else:
                per_metric[i][v] = s
    _collect_quantiles(store, d, relation, scope, specs, events, per_metric)
    return Collected(
        units=units,
        metrics=[MetricData(spec, arms) for spec, arms in zip(specs, per_metric, strict=True)],
    )


def _levels(level: float, n_events: int) -> tuple[float, float]:
    lo, hi = quantile_bound_levels(level, float(n_events))
    return float(lo), float(hi)


def _collect_quantiles(
    store: EventStore,
    d: Dialect,
    relation: str,
    scope: Scope,
    specs: Sequence[MetricSpec],
    events: dict[tuple[int, str], int],
    per_metric: list[dict[str, Summary]],
) -> None:
    """Second statement: quantiles at the CI's levels and the clustered indicator sums.

    Per arm the stats engine needs (``abllm.stats.quantiles``): the quantile at its level, the
    quantiles at ``quantile_bound_levels(level, n_events)`` (which depend on the arm's event
    count, known from the first statement) and, per unit, events at or below the arm's
    quantile and events in total, summed over units as ``RatioStats``.
    """
    index = {id(s): i for i, s in enumerate(specs)}
    variants = sorted({v for _, v in events})
    groups = [
        g
        for g in quantile_groups(specs)
        if any(events.get((index[id(s)], v), 0) > 0 for s in g.specs for v in variants)
    ]
    if not groups:
        return
    probs: list[list[list[float]]] = []
    for g in groups:
        group_probs = []
        for s in g.specs:
            level = float(s.quantile or 0.5)
            wanted: set[float] = set()
            for v in variants:
                wanted.update(_levels(level, events.get((index[id(s)], v), 0)))
            wanted.discard(level)
            group_probs.append([level, *sorted(p for p in wanted if 0.0 <= p <= 1.0)])
        probs.append(group_probs)
    sql, names = quantile_sql(d, relation, scope, groups, probs)
    for r in store.query(sql):
        row = dict(zip(names, r, strict=True))
        v = str(row["variant_id"])
        for g, group_probs in zip(groups, probs, strict=True):
            for k, (s, spec_probs) in enumerate(zip(g.specs, group_probs, strict=True)):
                n_star = events.get((index[id(s)], v), 0)
                pre = f"{g.key}_{k}_"
                at = {p: _f(row[f"{pre}q{j}"]) for j, p in enumerate(spec_probs)}
                lo, hi = _levels(spec_probs[0], n_star)
                per_metric[index[id(s)]][v] = QuantileStats(
                    level=spec_probs[0],
                    n_events=_f(row[f"{g.key}_m"]),
                    estimate=at[spec_probs[0]],
                    lower=at.get(lo, float("nan")),
                    upper=at.get(hi, float("nan")),
                    cluster=RatioStats(
                        n=_f(row[f"{g.key}_units"]),
                        sum_num=_f(row[pre + "s"]),
                        sum_den=_f(row[f"{g.key}_m"]),
                        sum_num_sq=_f(row[pre + "ss"]),
                        sum_den_sq=_f(row[f"{g.key}_mm"]),
                        sum_num_den=_f(row[pre + "sm"]),
                    ),
                    n_star=float(n_star),
                )
