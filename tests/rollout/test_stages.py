"""Stage transitions: advance, rollback, winner rollout, registration and live-variant refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from abllm.errors import Conflict, NotFound
from abllm.rollout import next_step, plan_of, previous_step, registered
from abllm.state import ExperimentState, replace

from .helpers import T0, experiment


def fresh(exp=None) -> ExperimentState:  # type: ignore[no-untyped-def]
    exp = exp or experiment()
    step = registered(ExperimentState(experiment_id=exp.id), exp, T0)
    assert step is not None
    return step.state


def test_register_starts_at_first_stage() -> None:
    state = fresh()
    assert state.stage == 0
    assert state.weights == {"control": 80, "a": 10, "b": 10}
    assert state.started_at == T0 and state.fingerprint and state.definition is not None
    assert registered(state, experiment(), T0) is None  # same definition: nothing to do


def test_walk_forward_through_stages_and_winner_to_completion() -> None:
    exp = experiment()
    plan = plan_of(exp)
    state = fresh(exp)
    seen = []
    now = T0
    state = next_step(state, plan, now).state
    assert state.weights == {"control": 60, "a": 20, "b": 20}
    state = next_step(state, plan, now).state
    with pytest.raises(Conflict, match="--winner"):
        next_step(state, plan, now)
    with pytest.raises(NotFound):
        next_step(state, plan, now, winner="zzz", variants=("control", "a", "b"))
    step = next_step(state, plan, now, winner="a")
    assert step.action == "start_winner"
    state = step.state
    seen.append(state.winner_percent)
    while state.status != "completed":
        now += timedelta(hours=1)
        step = next_step(state, plan, now)
        state = step.state
        seen.append(state.winner_percent)
    assert seen == [75, 95, 100]
    assert step.action == "complete"
    assert state.runtime().winner == "a" and state.runtime().winner_percent == 100
    with pytest.raises(Conflict, match="completed"):
        next_step(state, plan, now)


def test_rollback_walks_back_and_holds() -> None:
    exp = experiment()
    plan = plan_of(exp)
    state = fresh(exp)
    for _ in range(2):
        state = next_step(state, plan, T0).state
    state = next_step(state, plan, T0, winner="b").state
    state = next_step(state, plan, T0).state  # 95 %
    state = next_step(state, plan, T0).state  # completed
    back = previous_step(state, plan, T0)
    assert back.state.winner_percent == 95 and back.state.status is None and back.state.held
    state = previous_step(back.state, plan, T0).state
    assert state.winner_percent == 75
    state = previous_step(state, plan, T0).state
    assert state.winner is None and state.stage == 2
    state = previous_step(previous_step(state, plan, T0).state, plan, T0).state
    assert state.stage == 0
    with pytest.raises(Conflict, match="first stage"):
        previous_step(state, plan, T0)


def test_changing_variants_of_a_running_experiment_is_refused() -> None:
    state = fresh()
    changed = experiment(
        variants=[
            {"id": "control", "control": True, "llm": {"model": "m"}},
            {"id": "a", "llm": {"model": "m"}},
            {"id": "b", "llm": {"model": "m"}},
            {"id": "c", "llm": {"model": "m"}},
        ],
        rollout=None,
    )
    with pytest.raises(Conflict, match=r"start a new version instead \(set `version: 2`\)"):
        registered(state, changed, T0)
    # weights may change (sticky assignments keep units where they are)
    reweighted = experiment(
        variants=[
            {"id": "control", "control": True, "weight": 50, "llm": {"model": "sim-small"}},
            {"id": "a", "weight": 25, "llm": {"model": "sim-small"}},
            {"id": "b", "weight": 25, "llm": {"model": "sim-large"}},
        ]
    )
    step = registered(state, reweighted, T0)
    assert step is not None and step.action == "register" and step.state.stage == 0
    # a new version starts clean, at stage 0
    bumped = registered(replace(state, killed=True), changed.model_copy(update={"version": 2}), T0)
    assert bumped is not None and bumped.action == "new_version"
    assert bumped.state.experiment_version == 2 and not bumped.state.killed
    # an older config than the live version is refused
    with pytest.raises(Conflict, match="already live"):
        registered(bumped.state, changed, T0)


def test_draft_experiment_may_change_variants() -> None:
    draft = experiment(status="draft")
    state = fresh(draft)
    other = experiment(
        status="draft",
        variants=[
            {"id": "control", "control": True, "llm": {"model": "m"}},
            {"id": "x", "llm": {"model": "m"}},
        ],
        rollout=None,
    )
    step = registered(state, other, T0)
    assert step is not None and step.state.stage is None and step.state.weights is None


def test_kill_before_registration_holds() -> None:
    killed = ExperimentState(experiment_id="exp_r", killed=True, version=1)
    step = registered(killed, experiment(), T0)
    assert step is not None and step.state.killed and step.state.stage == 0
