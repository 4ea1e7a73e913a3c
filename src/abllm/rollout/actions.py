"""Operations on runtime state shared by the CLI, the admin API, the controller and the server.

Each is one atomic ``store.apply`` with an audit row: register a definition, kill, resume,
advance, roll back. ``abllm serve`` and the controller call :func:`register_experiments` at
start, which is where a live experiment whose variants changed without a version bump is
refused (seed 000: "never modify live experiments").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from abllm.config import Experiment
from abllm.errors import NotFound
from abllm.rollout.stages import (
    next_step,
    plan_of,
    previous_step,
    registered,
)
from abllm.state import ExperimentState, StateStore, Transition, replace, utcnow


def register_experiment(
    store: StateStore, experiment: Experiment, *, actor: str = "abllm", now: datetime | None = None
) -> ExperimentState:
    """Record ``experiment``'s definition (first time: at stage 0 of its plan).

    Raises Conflict when it is running and its variants changed without a version bump.
    """
    now = now or utcnow()
    return store.apply(
        experiment.id, lambda s: registered(s, experiment, now), actor=actor, now=now
    )


def register_experiments(
    store: StateStore,
    experiments: Iterable[Experiment],
    *,
    actor: str = "abllm",
    now: datetime | None = None,
) -> dict[str, ExperimentState]:
    """Register every experiment; checks them all before writing any (all or nothing)."""
    now = now or utcnow()
    experiments = list(experiments)
    for exp in experiments:  # refuse the whole config if one live experiment changed shape
        current = store.get(exp.id)
        if current is not None:
            registered(current, exp, now)
    return {exp.id: register_experiment(store, exp, actor=actor, now=now) for exp in experiments}


def kill(
    store: StateStore,
    experiment_id: str,
    *,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> ExperimentState:
    """Kill switch: every process serves control for this experiment until resumed."""
    return store.apply(
        experiment_id,
        lambda s: replace(s, killed=True),
        actor=actor,
        action="kill",
        reason=reason or "killed by hand",
        now=now,
    )


def pause(
    store: StateStore,
    experiment_id: str,
    *,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> ExperimentState:
    """Pause: every process serves control and the controller stops advancing until resumed."""
    return store.apply(
        experiment_id,
        lambda s: replace(s, paused=True),
        actor=actor,
        action="pause",
        reason=reason or "paused by hand",
        now=now,
    )


def resume(
    store: StateStore,
    experiment_id: str,
    *,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> ExperimentState:
    """Undo a kill or pause: clears the kill flag, the pause flag, paused arms and the hold."""
    return store.apply(
        experiment_id,
        lambda s: replace(s, killed=False, paused=False, paused_variants=(), held=False),
        actor=actor,
        action="resume",
        reason=reason or "resumed by hand",
        now=now,
    )


def _definition(state: ExperimentState, experiment: Experiment | None) -> Experiment | None:
    return experiment or state.definition


def advance(
    store: StateStore,
    experiment_id: str,
    *,
    actor: str,
    winner: str | None = None,
    reason: str | None = None,
    experiment: Experiment | None = None,
    now: datetime | None = None,
) -> ExperimentState:
    """One step forward (next stage, or the winner rollout when ``winner`` is named).

    Advancing by hand clears the hold a guardrail rollback left.
    """
    now = now or utcnow()

    def change(state: ExperimentState) -> Transition:
        definition = _definition(state, experiment)
        if definition is None and state.version == 0:
            raise NotFound(
                f"no runtime state for {experiment_id!r}: start `abllm serve` with its config "
                "first, or pass --config"
            )
        variants = tuple(v.id for v in definition.variants) if definition else ()
        step = next_step(state, plan_of(definition), now, winner=winner, variants=variants)
        return Transition(replace(step.state, held=False), step.action, step.reason)

    return store.apply(experiment_id, change, actor=actor, reason=reason, now=now)


def rollback(
    store: StateStore,
    experiment_id: str,
    *,
    actor: str,
    reason: str | None = None,
    experiment: Experiment | None = None,
    now: datetime | None = None,
) -> ExperimentState:
    """One step back; the controller will not advance again until someone advances by hand."""
    now = now or utcnow()

    def change(state: ExperimentState) -> Transition:
        if state.version == 0:
            raise NotFound(f"no runtime state for {experiment_id!r}: nothing to roll back")
        return previous_step(state, plan_of(_definition(state, experiment)), now)

    return store.apply(experiment_id, change, actor=actor, reason=reason, now=now)
