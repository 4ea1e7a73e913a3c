"""Pure stage transitions: where a rollout is, and what "advance" and "rollback" mean.

A rollout walks one line: ``stages[0] … stages[S-1]``, then (once a winner is named)
``winner[0] … winner[W-1]``; entering a 100 % winner step that is the last one completes the
experiment (the winner becomes what everyone is served). Rollback walks the same line back.
No I/O: the CLI, the admin API and the controller all call these and store the result.
"""

from __future__ import annotations

from datetime import datetime

from abllm.config import Experiment, RolloutPlan
from abllm.errors import Conflict, NotFound
from abllm.state.models import (
    Action,
    ExperimentState,
    Transition,
    replace,
    variant_fingerprint,
)

#: A transition: the wanted state, what it is called in the audit log and why.
Step = Transition


def plan_of(experiment: Experiment | None) -> RolloutPlan:
    """The experiment's plan, or the default one (winner rollout only)."""
    if experiment is not None and experiment.rollout is not None:
        return experiment.rollout
    return RolloutPlan()


def enter_stage(
    state: ExperimentState, plan: RolloutPlan, index: int, now: datetime
) -> ExperimentState:
    """``state`` at ``stages[index]``: its traffic and weights (None = as in the YAML)."""
    stage = plan.stages[index]
    return replace(
        state,
        stage=index,
        stage_started_at=now,
        traffic=stage.traffic,
        weights=dict(stage.weights) if stage.weights is not None else None,
        winner=None,
        winner_stage=None,
        winner_percent=None,
        status=None,
    )


def enter_winner_stage(
    state: ExperimentState, plan: RolloutPlan, winner: str, index: int, now: datetime
) -> Step:
    """``state`` at ``winner[index]``; the last step at 100 % completes the experiment."""
    steps = plan.winner
    if not steps:
        done = replace(state, winner=winner, winner_stage=None, winner_percent=100.0)
        done = replace(done, status="completed", stage_started_at=now)
        return Step(done, "complete", f"winner {winner} serves 100 %: experiment completed")
    step = steps[index]
    last = index == len(steps) - 1
    new = replace(
        state,
        winner=winner,
        winner_stage=index,
        winner_percent=step.percent,
        stage_started_at=now,
        status="completed" if last and step.percent >= 100 else None,
    )
    if new.status == "completed":
        return Step(new, "complete", f"winner {winner} serves 100 %: experiment completed")
    action: Action = "start_winner" if index == 0 else "advance"
    return Step(new, action, f"winner {winner} now serves {step.percent:g} % of units")


def position(state: ExperimentState, plan: RolloutPlan) -> str:
    """Human description of where the rollout is."""
    if state.status == "completed":
        return f"completed (winner {state.winner})" if state.winner else "completed"
    if state.winner is not None:
        total = len(plan.winner)
        k = (state.winner_stage or 0) + 1
        return f"winner rollout step {k}/{total}: {state.winner} at {state.winner_percent:g} %"
    if state.stage is not None and plan.stages:
        stage = plan.stages[state.stage]
        name = f" {stage.name!r}" if stage.name else ""
        return f"stage {state.stage + 1}/{len(plan.stages)}{name}"
    return "no rollout stage (config traffic and weights)"


def next_step(
    state: ExperimentState,
    plan: RolloutPlan,
    now: datetime,
    *,
    winner: str | None = None,
    variants: tuple[str, ...] = (),
) -> Step:
    """One step forward; a winner is needed to go past the last stage.

    Raises Conflict when there is nowhere to go (completed, or last stage without a winner).
    """
    if winner is not None and variants and winner not in variants:
        raise NotFound(f"no variant {winner!r} (variants: {', '.join(variants)})")
    if state.status == "completed":
        raise Conflict(f"{state.experiment_id} is completed; nothing to advance")
    if state.winner is not None:
        if winner is not None and winner != state.winner:
            raise Conflict(
                f"{state.experiment_id} is already rolling out winner {state.winner!r}; "
                "roll back first to pick another"
            )
        k = (state.winner_stage or 0) + 1
        return enter_winner_stage(state, plan, state.winner, min(k, len(plan.winner) - 1), now)
    last_stage = len(plan.stages) - 1
    if winner is None:
        if state.stage is None and plan.stages:
            new = enter_stage(state, plan, 0, now)
            return Step(new, "advance", f"entered {position(new, plan)}")
        if state.stage is not None and state.stage < last_stage:
            new = enter_stage(state, plan, state.stage + 1, now)
            return Step(new, "advance", f"entered {position(new, plan)}")
        raise Conflict(
            f"{state.experiment_id} is at its last stage; name the winner to roll it out "
            "(--winner VARIANT)"
        )
    return enter_winner_stage(state, plan, winner, 0, now)


def previous_step(state: ExperimentState, plan: RolloutPlan, now: datetime) -> Step:
    """One step back; ``held`` is set so the controller does not advance again on its own."""
    if state.winner is not None:
        k = state.winner_stage
        if state.status == "completed" and plan.winner:
            k = len(plan.winner) - 1
        if k is not None and k > 0:
            step = enter_winner_stage(state, plan, state.winner, k - 1, now)
            new = replace(step.state, held=True)
            return Step(new, "rollback", f"back to {position(new, plan)}")
        if plan.stages:
            new = enter_stage(state, plan, len(plan.stages) - 1, now)
        else:
            new = replace(
                state,
                winner=None,
                winner_stage=None,
                winner_percent=None,
                status=None,
                stage_started_at=now,
            )
        new = replace(new, held=True)
        return Step(new, "rollback", f"winner rollout undone: back to {position(new, plan)}")
    if state.stage is not None and state.stage > 0:
        new = replace(enter_stage(state, plan, state.stage - 1, now), held=True)
        return Step(new, "rollback", f"back to {position(new, plan)}")
    raise Conflict(
        f"{state.experiment_id} is at its first stage; nothing to roll back "
        f"(`abllm kill {state.experiment_id}` serves control to everyone)"
    )


def registered(state: ExperimentState, experiment: Experiment, now: datetime) -> Step | None:
    """The state after (re)registering ``experiment``'s definition; None when unchanged.

    Refuses (Conflict) a running experiment whose variants changed without a version bump,
    and a config older than the version already running.
    """
    fingerprint = variant_fingerprint(experiment)
    plan = plan_of(experiment)
    version = experiment.version
    first = state.definition is None
    if not first and version < state.experiment_version:
        raise Conflict(
            f"{experiment.id}: the config has version {version} but version "
            f"{state.experiment_version} is already live; deploy the newer config"
        )
    if first or version > state.experiment_version:
        new = ExperimentState(
            experiment_id=experiment.id,
            experiment_version=version,
            fingerprint=fingerprint,
            definition=experiment,
            started_at=experiment.start or now,
            stage_started_at=now,
            # a kill recorded before the first registration holds; a new version starts clean
            killed=state.killed if first else False,
            paused=state.paused if first else False,
            version=state.version,
        )
        if plan.stages:
            new = enter_stage(new, plan, 0, now)
        action: Action = "register" if first else "new_version"
        return Step(new, action, f"version {version} registered at {position(new, plan)}")
    assert state.definition is not None
    live = state.definition.status == "running" and state.status != "completed"
    if live and state.fingerprint not in (None, fingerprint):
        raise Conflict(
            f"{experiment.id} version {version} is running and its variants changed "
            f"(was {', '.join(v.id for v in state.definition.variants)}; now "
            f"{', '.join(v.id for v in experiment.variants)}): changing the variants of a live "
            f"experiment reshuffles its units; start a new version instead (set `version: "
            f"{version + 1}`)"
        )
    if state.definition == experiment and state.fingerprint == fingerprint:
        return None
    new = replace(state, definition=experiment, fingerprint=fingerprint)
    if state.stage is not None and new.winner is None:
        if not plan.stages:
            new = replace(new, stage=None, traffic=None, weights=None)
        else:  # the plan may have been edited: re-read the current stage's values
            index = min(state.stage, len(plan.stages) - 1)
            stage = plan.stages[index]
            weights = dict(stage.weights) if stage.weights is not None else None
            new = replace(new, stage=index, traffic=stage.traffic, weights=weights)
    return Step(new, "register", f"definition of version {version} updated")
