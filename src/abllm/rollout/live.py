"""Live results for the controller, from the analysis of the events in the store.

The analysis (``abllm.analysis.analyze``) evaluates every guardrail with a one-sided
sequential test from ``abllm.stats`` and a minimum sample; this adapter turns its result into
the policy's :class:`~abllm.rollout.results.LiveResults`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from abllm.config import Experiment, Guardrail
from abllm.rollout.results import GuardrailCheck, LiveResults
from abllm.state import ExperimentState

if TYPE_CHECKING:
    from abllm.analysis import ExperimentResult
    from abllm.events import EventStore

#: What the controller calls for live figures: (experiment, state, now) -> LiveResults.
ResultsSource = Callable[[Experiment, ExperimentState, datetime], LiveResults]


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _limit(g: Guardrail, control_value: float) -> tuple[float, bool]:
    """(the strictest absolute limit of ``g``, whether it is a maximum).

    Relative bounds become absolute with the control's current value, so the gate can ask
    "is the estimate on the good side of every bound?" in one comparison.
    """
    uppers = [g.max] if g.max is not None else []
    if g.max_ratio is not None:
        uppers.append(g.max_ratio * control_value)
    if uppers:
        return min(uppers), True
    lowers = [g.min] if g.min is not None else []
    if g.min_ratio is not None:
        lowers.append(g.min_ratio * control_value)
    return (max(lowers) if lowers else math.nan), False


def _guardrail(experiment: Experiment, metric: str, action: str) -> Guardrail | None:
    same = [g for g in experiment.guardrails if g.metric == metric]
    return next((g for g in same if g.action == action), same[0] if same else None)


def live_from_result(experiment: Experiment, result: Any) -> LiveResults:
    """Adapt an ``abllm.analysis.ExperimentResult`` (duck-typed to keep this module light)."""
    units = {str(v): int(vr.units) for v, vr in result.variants.items()}
    control = str(result.control)
    checks = []
    for status in result.guardrails:
        metric = result.metrics.get(status.metric)
        arm = metric.arms.get(status.variant) if metric is not None else None
        base = metric.arms.get(control) if metric is not None else None
        n = int(arm.n) if arm is not None else 0
        g = _guardrail(experiment, status.metric, str(status.action))
        bound, upper = _f(status.bound), True
        if g is not None:
            bound, upper = _limit(g, _f(base.mean) if base is not None else math.nan)
        checks.append(
            GuardrailCheck(
                metric=status.metric,
                variant=status.variant,
                breached=bool(status.breached),
                value=_f(status.value),
                bound=bound,
                units=n,
                action=str(status.action),
                p_value=_f(status.p_value),
                upper=upper,
                reason=str(status.reason or ""),
            )
        )
    rec = result.recommendation
    winner = rec.variant if str(rec.decision) == "SHIP" else None
    rewards = {}
    if experiment.bandit is not None:
        from abllm.rollout.reweight import rewards_from_result

        rewards = rewards_from_result(experiment, result)
    return LiveResults(
        experiment_id=experiment.id,
        control=control,
        units=units,
        checks=tuple(checks),
        winner=winner,
        as_of=result.computed_at,
        rewards=rewards,
    )


def still_racing(experiment: Experiment, state: ExperimentState) -> Experiment:
    """``experiment`` without the arms a guardrail paused: what the live analysis compares.

    A paused arm is out of the race: it takes no new units, so its breach would otherwise keep
    the recommendation at PAUSE and its shrinking share would trip the sample-ratio check for
    good. Its units stay in the store (``abllm analyze`` still reports them) but are left out
    of the controller's comparison. ``model_copy`` skips validation on purpose: a stage's
    weights or a forced unit may still name the paused arm.
    """
    paused = set(state.paused_variants) - {experiment.control.id}
    if not paused:
        return experiment
    variants = [v for v in experiment.variants if v.id not in paused]
    return experiment.model_copy(update={"variants": variants, "rollout": None, "bandit": None})


class AnalysisResults:
    """:data:`ResultsSource` backed by ``abllm.analysis.analyze`` on an event store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        #: The latest analysis of each experiment (for status output and the demo).
        self.last: dict[str, ExperimentResult] = {}

    def __call__(
        self, experiment: Experiment, state: ExperimentState, now: datetime
    ) -> LiveResults:
        from abllm.analysis import analyze

        racing = still_racing(experiment, state)
        ids = {v.id for v in racing.variants}
        weights = None
        if state.weights is not None:
            weights = {v: w for v, w in state.weights.items() if v in ids}
        result = analyze(racing, self.store, now=now, weights=weights)
        self.last[experiment.id] = result
        live = live_from_result(racing, result)
        if experiment.bandit is not None and racing is not experiment:
            from abllm.rollout.reweight import rewards_from_result

            live = replace(live, rewards=rewards_from_result(experiment, result))
        return live
