"""Live results for the controller, from the analysis of the events in the store.

The analysis (``abllm.analysis.analyze``) evaluates every guardrail with a one-sided
sequential test from ``abllm.stats`` and a minimum sample; this adapter turns its result into
the policy's :class:`~abllm.rollout.results.LiveResults`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from abllm.config import Experiment
from abllm.rollout.results import GuardrailCheck, LiveResults
from abllm.state import ExperimentState

if TYPE_CHECKING:
    from abllm.events import EventStore

#: What the controller calls for live figures: (experiment, state, now) -> LiveResults.
ResultsSource = Callable[[Experiment, ExperimentState, datetime], LiveResults]


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _upper(experiment: Experiment, metric: str) -> bool:
    """Whether the guardrail on ``metric`` is a maximum (from the config)."""
    for g in experiment.guardrails:
        if g.metric == metric:
            if (g.max is not None or g.max_ratio is not None) and (
                g.min is None and g.min_ratio is None
            ):
                return True
            if g.max is None and g.max_ratio is None:
                return False
    return True


def live_from_result(experiment: Experiment, result: Any) -> LiveResults:
    """Adapt an ``abllm.analysis.ExperimentResult`` (duck-typed to keep this module light)."""
    units = {str(v): int(vr.units) for v, vr in result.variants.items()}
    checks = []
    for g in result.guardrails:
        metric = result.metrics.get(g.metric)
        arm = metric.arms.get(g.variant) if metric is not None else None
        n = int(arm.n) if arm is not None else units.get(g.variant, 0)
        value, bound = _f(g.value), _f(g.bound)
        checks.append(
            GuardrailCheck(
                metric=g.metric,
                variant=g.variant,
                breached=bool(g.breached),
                value=value,
                bound=bound,
                units=n,
                action=str(g.action),
                p_value=_f(g.p_value),
                upper=_upper(experiment, g.metric),
                reason=str(g.reason or ""),
            )
        )
    rec = result.recommendation
    winner = rec.variant if str(rec.decision) == "SHIP" else None
    return LiveResults(
        experiment_id=experiment.id,
        control=result.control,
        units=units,
        checks=tuple(checks),
        winner=winner,
        as_of=result.computed_at,
    )


class AnalysisResults:
    """:data:`ResultsSource` backed by ``abllm.analysis.analyze`` on an event store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def __call__(
        self, experiment: Experiment, state: ExperimentState, now: datetime
    ) -> LiveResults:
        from abllm.analysis import analyze

        result = analyze(experiment, self.store, now=now)
        return live_from_result(experiment, result)
