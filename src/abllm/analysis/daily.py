"""Cumulative daily results of one metric: the effect and its CI as the data arrived.

Each point is the analysis of every event up to the end of that UTC day (the last point stops
at ``now``), which is what a dashboard's "over time" chart and a guardrail history need. With
``decision.sequential`` the sequential intervals are valid at every one of these looks.
``hourly=True`` cuts at the end of every UTC hour instead (for data spanning a day or two).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from abllm.analysis.collect import collect
from abllm.analysis.compute import metric_results, required_units, tuning_units
from abllm.analysis.dialects import dialect_for
from abllm.analysis.engine import analysis_scope, primary_metric, probe
from abllm.analysis.result import ArmResult, Comparison
from abllm.analysis.specs import experiment_specs, find_spec
from abllm.config import Experiment
from abllm.errors import NotFound
from abllm.events import EventStore


@dataclass(frozen=True)
class DailyPoint:
    """The metric as of ``until`` (end of ``day``, or of an hour): per-arm values, treatment
    comparisons and the units attributed to each variant by then."""

    day: date
    until: datetime
    arms: dict[str, ArmResult]
    comparisons: dict[str, Comparison]
    units: dict[str, int] = field(default_factory=dict)


def daily_results(
    experiment: Experiment,
    store: EventStore,
    metric: str,
    now: datetime | None = None,
    max_days: int = 366,
    *,
    hourly: bool = False,
) -> list[DailyPoint]:
    """One cumulative point per UTC day (per hour with ``hourly``) from the first exposure to
    ``now``; at most ``max_days`` points, the most recent kept. Raises ``NotFound`` for an
    unknown metric name."""
    spec = find_spec(experiment_specs(experiment), metric)
    if spec is None:
        known = ", ".join(s.name for s in experiment_specs(experiment))
        raise NotFound(f"no metric {metric!r} in experiment {experiment.id} (known: {known})")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    d = dialect_for(store.dialect)
    relation = getattr(store, "events_relation", "abllm_events")
    scope = analysis_scope(experiment, now)
    found = probe(store, scope, d, relation)
    if found.first_exposure is None or scope.until is None:
        return []
    first = found.first_exposure.date()
    last = scope.until.date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)][-max_days:]
    ends = [datetime.combine(day + timedelta(days=1), time(0), UTC) for day in days]
    if hourly:
        hour = found.first_exposure.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        count = int((scope.until - hour) / timedelta(hours=1)) + 1
        ends = [hour + timedelta(hours=i + 1) for i in range(count)][-max_days:]
    control = experiment.control.id
    treatments = [v.id for v in experiment.variants if v.id != control]
    rule = experiment.decision
    primary = primary_metric(experiment)
    # The primary metric's power calculation tunes every sequential test (as in ``analyze``).
    pspec = find_spec(experiment_specs(experiment), primary) if primary else None
    specs = [spec] if pspec is None or pspec.name == spec.name else [spec, pspec]
    points = []
    for cut in ends:
        until = min(cut - timedelta(microseconds=1), scope.until)
        collected = collect(store, replace(scope, until=until), specs, dialect=d)
        data = collected.metrics[0]
        required = required_units(
            rule, collected.metrics[-1].arms.get(control), len(experiment.variants)
        )
        tuning = tuning_units(rule, required, len(experiment.variants))
        res = metric_results([data], control, treatments, rule, primary, tuning)[spec.name]
        points.append(
            DailyPoint(until.date(), until, res.arms, res.comparisons, dict(collected.units))
        )
    return points
