"""The pure policy: breaches pause or roll back, healthy gated stages advance, schedules hold."""

from __future__ import annotations

from dataclasses import replace as dc_replace
from datetime import timedelta

from abllm.rollout import LiveResults, decide, plan_of, registered
from abllm.state import ExperimentState, replace

from .helpers import T0, check, experiment, healthy, schedule_experiment


def start(exp=None) -> ExperimentState:  # type: ignore[no-untyped-def]
    exp = exp or experiment()
    step = registered(ExperimentState(experiment_id=exp.id), exp, T0)
    assert step is not None
    return replace(step.state, version=1)


def run(state: ExperimentState, results: LiveResults, exp=None, now=T0):  # type: ignore[no-untyped-def]
    exp = exp or experiment()
    return decide(state, results, exp.guardrails, plan_of(exp), now)


def test_breach_pauses_the_arm() -> None:
    results = healthy()
    bad = check("b", breached=True, value=0.06, bound=0.03)
    results = dc_replace(results, checks=(*results.checks, bad))
    d = run(start(), results)
    assert d.action == "pause_variant"
    assert d.state is not None and d.state.paused_variants == ("b",)
    assert d.breaches == (bad,) and "error_rate of b" in d.reason
    # once paused, the same breach no longer acts
    assert run(d.state, results).action != "pause_variant"


def test_rollback_breach_goes_back_a_stage_and_holds() -> None:
    exp = experiment()
    state = start(exp)
    state = replace(state, stage=1, weights={"control": 60, "a": 20, "b": 20})
    slow = check("a", "p95_latency_ms", breached=True, value=2000, bound=900, action="rollback")
    d = run(state, dc_replace(healthy(), checks=(slow,)))
    assert d.action == "rollback"
    assert d.state is not None and d.state.stage == 0 and d.state.held
    assert d.state.weights == {"control": 80, "a": 10, "b": 10}
    # held: a healthy tick does not advance again
    again = run(d.state, healthy(units=5000))
    assert again.action == "none" and "held" in (again.waiting or "")


def test_rollback_at_first_stage_pauses_instead() -> None:
    slow = check("a", "p95_latency_ms", breached=True, value=2000, bound=900, action="rollback")
    d = run(start(), dc_replace(healthy(), checks=(slow,)))
    assert d.action == "pause_variant" and d.state is not None
    assert d.state.paused_variants == ("a",) and d.state.stage == 0


def test_alert_only_guardrail_changes_nothing() -> None:
    loud = check("a", breached=True, action="alert")
    d = run(start(), dc_replace(healthy(units=10), checks=(loud,)))
    assert d.action == "alert" and d.state is None and d.alerts == (loud,)


def test_gated_stage_waits_for_enough_data_then_advances() -> None:
    state = start()
    d = run(state, healthy(units=50))
    assert d.action == "none" and "needs 100" in (d.waiting or "")
    missing = dc_replace(healthy(units=500), checks=healthy(units=500).checks[:2])
    d = run(state, missing)
    assert d.action == "none" and "p95_latency_ms of b: no data yet" in (d.waiting or "")
    over = dc_replace(
        healthy(units=500), checks=(*healthy(units=500).checks[1:], check("a", value=0.05))
    )
    assert run(state, over).action == "none"  # estimate above the bound: not "holding"
    d = run(state, healthy(units=500))
    assert d.action == "advance" and d.state is not None and d.state.stage == 1


def test_paused_arm_does_not_block_the_gate() -> None:
    state = replace(start(), paused_variants=("b",))
    results = healthy(units=500, arms=("a",))
    d = run(state, results)
    assert d.action == "advance"


def test_killed_or_completed_experiments_are_left_alone() -> None:
    bad = dc_replace(healthy(), checks=(check("a", breached=True),))
    assert run(replace(start(), killed=True), bad).action == "none"
    assert run(replace(start(), status="completed", winner="a"), bad).action == "none"


def test_day_schedule() -> None:
    exp = schedule_experiment()
    state = start(exp)
    assert state.traffic == 5
    results = LiveResults("exp_days", "control", {"control": 10, "t": 10})
    seen = [state.traffic]
    for day in range(0, 12):
        now = T0 + timedelta(days=day, minutes=1)
        d = run(state, results, exp, now)
        if d.state is not None:
            state = replace(d.state, version=state.version + 1)
            seen.append(state.traffic)
            assert now >= T0 + timedelta(days=[0, 2, 5, 7, 10][state.stage or 0])
    assert seen == [5, 10, 25, 50, 100]


def test_winner_rollout_after_decision_follows_hours() -> None:
    exp = experiment(rollout={"stages": [], "auto_winner": True})
    state = start(exp)
    results = dc_replace(healthy(), winner="a")
    d = run(state, results, exp, T0)
    assert d.action == "start_winner" and d.state is not None and d.state.winner_percent == 75
    state = d.state
    assert run(state, results, exp, T0 + timedelta(hours=23)).action == "none"
    d = run(state, results, exp, T0 + timedelta(hours=24))
    assert d.action == "advance" and d.state is not None and d.state.winner_percent == 95
    state = d.state
    assert run(state, results, exp, T0 + timedelta(hours=24 + 47)).action == "none"
    d = run(state, results, exp, T0 + timedelta(hours=24 + 48))
    assert d.action == "complete" and d.state is not None and d.state.status == "completed"


def test_winner_breach_undoes_the_winner_rollout() -> None:
    exp = experiment(rollout={"stages": [], "auto_winner": True})
    state = run(start(exp), dc_replace(healthy(), winner="a"), exp).state
    assert state is not None
    bad = dc_replace(healthy(), checks=(check("a", breached=True),))
    d = run(state, bad, exp)
    assert d.action == "rollback" and d.state is not None
    assert d.state.winner is None and d.state.paused_variants == ("a",) and d.state.held
    # breaches of arms that are not being rolled out are ignored during the winner rollout
    other = dc_replace(healthy(), checks=(check("b", breached=True),))
    assert run(state, other, exp).action == "none"
