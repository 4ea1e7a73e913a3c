"""Results that do not flicker: the running intersection of the primary's confidence sequences.

Always-valid confidence sequences hold at every look simultaneously (Howard et al. 2021), so
their intersection over the looks is also a valid 1 − α sequence, and the running minimum of
the always-valid p-values is a valid p-value (the event "some look has p ≤ α" is exactly what
they bound). Recomputing only the cumulative sequence at ``now`` lets a SHIP seen yesterday
vanish today on noise; intersecting does not.

The looks are the ends of the UTC days since the first exposure (as in
:func:`abllm.analysis.daily_results`, at most ``MAX_LOOKS``, the latest kept) and ``now``. The
mixture's tuning is the same at every look (the current analysis'), because the guarantee is
for one fixed boundary. Holm (or BH) across treatments is applied to the running minima.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from abllm.analysis.collect import collect
from abllm.analysis.compute import decidable, metric_results
from abllm.analysis.dialects import Dialect
from abllm.analysis.result import Comparison, MetricResult
from abllm.analysis.specs import MetricSpec
from abllm.analysis.sql import Scope
from abllm.config import DecisionRule
from abllm.events import EventStore
from abllm.stats import adjust_p_values

#: Daily looks intersected (the most recent ones; fewer looks are still valid).
MAX_LOOKS = 60


def looks(first_exposure: datetime, until: datetime) -> list[datetime]:
    """Ends of the UTC days from the first exposure's day, strictly before ``until``."""
    day = first_exposure.astimezone(UTC).date()
    out: list[datetime] = []
    while True:
        end = datetime.combine(day + timedelta(days=1), time(0), UTC) - timedelta(microseconds=1)
        if end >= until:
            return out[-MAX_LOOKS:]
        out.append(end)
        day += timedelta(days=1)


def _meet(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Intersection of two intervals (an undefined end leaves the other end's value)."""

    def pick(f: Callable[[list[float]], float], x: float, y: float) -> float:
        known = [v for v in (x, y) if not math.isnan(v)]
        return f(known) if known else math.nan

    return pick(max, a[0], b[0]), pick(min, a[1], b[1])


def intersect(
    current: MetricResult, earlier: Sequence[MetricResult], rule: DecisionRule
) -> MetricResult:
    """``current`` with its sequential CIs intersected and its sequential p-values minimised
    over ``earlier`` looks, then corrected across treatments again."""
    treatments = list(current.comparisons)
    running: dict[str, Comparison] = {}
    for v, cmp in current.comparisons.items():
        p, d_ci, r_ci = cmp.p_value_sequential, cmp.seq_diff_ci, cmp.seq_rel_ci
        for past in earlier:
            old = past.comparisons.get(v)
            if old is None or old.error is not None or cmp.error is not None:
                continue
            if math.isfinite(old.p_value_sequential):
                p = min(p, old.p_value_sequential) if math.isfinite(p) else old.p_value_sequential
            d_ci, r_ci = _meet(d_ci, old.seq_diff_ci), _meet(r_ci, old.seq_rel_ci)
        running[v] = replace(cmp, p_value_sequential=p, seq_diff_ci=d_ci, seq_rel_ci=r_ci)
    adjusted = adjust_p_values(
        [running[v].p_value_sequential for v in treatments], rule.correction
    ).tolist()
    fixed = {
        v: replace(
            running[v],
            p_value_adjusted=a,
            # Keep the canary floor the current look applied (compute.decidable).
            significant=bool(
                running[v].error is None and a < rule.alpha and _decidable(current, v, rule)
            ),
        )
        for v, a in zip(treatments, adjusted, strict=True)
    }
    return replace(current, comparisons=fixed)


def _decidable(current: MetricResult, v: str, rule: DecisionRule) -> bool:
    """The canary floor of the current look (``abllm.analysis.compute.decidable``)."""
    controls = [a for a in current.arms if a not in current.comparisons]
    if not controls or v not in current.arms:
        return True
    n_c, n_t = current.arms[controls[0]].n, current.arms[v].n
    return bool(decidable(n_c, n_t, rule.min_units_per_arm))


def running_primary(
    store: EventStore,
    d: Dialect,
    scope: Scope,
    spec: MetricSpec,
    current: MetricResult,
    first_exposure: datetime | None,
    control: str,
    rule: DecisionRule,
    tuning: float | None,
) -> MetricResult:
    """The primary metric under ``decision.sequential``, intersected over the daily looks."""
    if not rule.sequential or first_exposure is None or scope.until is None:
        return current
    treatments = list(current.comparisons)
    earlier = []
    for until in looks(first_exposure, scope.until):
        collected = collect(store, replace(scope, until=until), [spec], dialect=d)
        res = metric_results(collected.metrics, control, treatments, rule, spec.name, tuning)
        earlier.append(res[spec.name])
    return intersect(current, earlier, rule)
