"""The rollout policy: (state, live results, guardrails, plan, now) -> decision. Pure.

No I/O, no clock: the controller passes ``now`` and stores what comes back, so every rule here
is tested with plain values. Order of rules, first match wins:

1. killed, paused, stopped or completed experiments are left alone;
2. a breached guardrail acts (seed 001 "automated rollback", seed 000 "auto-pause"):
   ``pause`` sends the arm's units to control; ``rollback`` returns to the previous stage and
   holds there (pausing the arm when there is no earlier stage); during a winner rollout a
   breach by the winner undoes the winner rollout; ``alert`` only reports;
3. otherwise, with ``auto_advance`` and not held, the next step is taken when its conditions
   hold: ``after_days`` since start (seed 000's day schedule), the current stage's
   ``min_hours``, and for ``gated`` stages every guardrail holding with ``min_units`` per arm
   (SLO gating); winner steps advance after their ``hours`` (seed 000: 75 % for 24 h, 95 %
   for 48 h, 100 %); with ``auto_winner`` the winner rollout starts when the analysis
   recommends shipping a variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from abllm.config import Guardrail, RolloutPlan, Stage
from abllm.rollout.results import GuardrailCheck, LiveResults
from abllm.rollout.stages import Step, enter_stage, next_step, position, previous_step
from abllm.state.models import ExperimentState, replace

DecisionAction = Literal[
    "none", "pause_variant", "rollback", "advance", "start_winner", "complete", "alert", "reweight"
]


@dataclass(frozen=True)
class Decision:
    """What to do now. ``state`` is the wanted state (None: store nothing).

    ``breaches`` are the guardrail checks that caused a change, ``alerts`` the breached
    checks whose guardrail only alerts; ``waiting`` says why no step was taken.
    """

    action: DecisionAction
    state: ExperimentState | None = None
    reason: str = ""
    breaches: tuple[GuardrailCheck, ...] = ()
    alerts: tuple[GuardrailCheck, ...] = ()
    waiting: str | None = None


def decide(
    state: ExperimentState,
    results: LiveResults,
    guardrails: Sequence[Guardrail],
    plan: RolloutPlan,
    now: datetime,
) -> Decision:
    """The decision for one experiment at ``now`` (see the module docs for the rules)."""
    if state.killed:
        return Decision("none", reason="killed")
    if state.paused or state.status in ("paused", "stopped", "completed"):
        return Decision("none", reason=f"status {state.status or 'paused'}")
    active = _active_treatments(state, results)
    breached = [c for c in results.checks if c.breached and c.variant in active]
    acting = tuple(c for c in breached if c.action in ("pause", "rollback"))
    alerts = tuple(c for c in breached if c.action not in ("pause", "rollback"))
    if acting:
        return _on_breach(state, plan, now, acting, alerts)
    step = _advance(state, results, guardrails, plan, now, active)
    if isinstance(step, Decision):
        return Decision(step.action, step.state, step.reason, alerts=alerts)
    if alerts:
        return Decision("alert", reason=_describe(alerts), alerts=alerts, waiting=step)
    return Decision("none", waiting=step)


def _describe(checks: Sequence[GuardrailCheck]) -> str:
    return "guardrail breached: " + "; ".join(c.describe() for c in checks)


def _active_treatments(state: ExperimentState, results: LiveResults) -> set[str]:
    """Treatment arms still exposed (not paused; only the winner during a winner rollout)."""
    if state.winner is not None:
        return {state.winner} - {results.control}
    if state.definition is not None:
        arms = {v.id for v in state.definition.variants}
    else:
        arms = set(results.units)
    return arms - {results.control} - set(state.paused_variants)


def _on_breach(
    state: ExperimentState,
    plan: RolloutPlan,
    now: datetime,
    acting: tuple[GuardrailCheck, ...],
    alerts: tuple[GuardrailCheck, ...],
) -> Decision:
    reason = _describe(acting)
    pause = {c.variant for c in acting if c.action == "pause"}
    rollback = {c.variant for c in acting if c.action == "rollback"}
    if state.winner is not None:
        # A breach by the winner being rolled out: undo the winner rollout, pause the arm.
        new = _undo_winner(state, plan, now)
        new = replace(new, paused_variants=tuple(sorted({*state.paused_variants, state.winner})))
        return Decision("rollback", new, reason, acting, alerts)
    if rollback and state.stage is not None and state.stage > 0:
        new = previous_step(state, plan, now).state
        action: DecisionAction = "rollback"
    else:
        new = state
        pause |= rollback  # nowhere to roll back to: pause the arm instead
        action = "pause_variant"
    if pause:
        new = replace(new, paused_variants=tuple(sorted({*new.paused_variants, *pause})))
    return Decision(action, new, reason, acting, alerts)


def _undo_winner(state: ExperimentState, plan: RolloutPlan, now: datetime) -> ExperimentState:
    if plan.stages:
        base = enter_stage(state, plan, len(plan.stages) - 1, now)
    else:
        base = replace(
            state, winner=None, winner_stage=None, winner_percent=None, stage_started_at=now
        )
    return replace(base, held=True)


def _elapsed(since: datetime | None, now: datetime, hours: float) -> bool:
    return since is None or now >= since + timedelta(hours=hours)


def _advance(
    state: ExperimentState,
    results: LiveResults,
    guardrails: Sequence[Guardrail],
    plan: RolloutPlan,
    now: datetime,
    active: set[str],
) -> Decision | str:
    """A step when one is due, else a sentence saying what it waits for."""
    if not plan.auto_advance:
        return "auto_advance is off: advance by hand"
    if state.held:
        return "held after a rollback: advance by hand"
    if state.winner is not None:
        k = state.winner_stage or 0
        hours = plan.winner[k].hours if k < len(plan.winner) else 0.0
        if not _elapsed(state.stage_started_at, now, hours):
            return f"winner step {k + 1} lasts {hours:g} h"
        return _step(next_step(state, plan, now))
    last = len(plan.stages) - 1
    if state.stage is not None and state.stage < last:
        current, upcoming = plan.stages[state.stage], plan.stages[state.stage + 1]
        return _stage_due(state, results, guardrails, current, upcoming, now, active, plan)
    if plan.auto_winner and results.winner is not None and results.winner != results.control:
        stage = plan.stages[state.stage] if state.stage is not None else None
        min_hours = stage.min_hours if stage is not None else None
        if min_hours is not None and not _elapsed(state.stage_started_at, now, min_hours):
            return f"stage lasts at least {min_hours:g} h"
        return _step(next_step(state, plan, now, winner=results.winner))
    return f"at {position(state, plan)}: waiting for a winner"


def _stage_due(
    state: ExperimentState,
    results: LiveResults,
    guardrails: Sequence[Guardrail],
    current: Stage,
    upcoming: Stage,
    now: datetime,
    active: set[str],
    plan: RolloutPlan,
) -> Decision | str:
    conditions = 0
    if upcoming.after_days is not None:
        conditions += 1
        start = state.started_at
        if start is not None and now < start + timedelta(days=upcoming.after_days):
            return f"next stage starts on day {upcoming.after_days:g}"
    if current.min_hours is not None:
        conditions += 1
        if not _elapsed(state.stage_started_at, now, current.min_hours):
            return f"stage lasts at least {current.min_hours:g} h"
    if upcoming.gated:
        conditions += 1
        missing = gate_failures(results, guardrails, upcoming.min_units, _exposed(state, active))
        if missing:
            return "gate: " + "; ".join(missing)
    if conditions == 0:
        return "the next stage has no schedule or gate: advance by hand"
    step = next_step(state, plan, now)
    return _step(step)


def _exposed(state: ExperimentState, active: set[str]) -> set[str]:
    """Active arms with a weight above zero in the current stage."""
    if state.weights is None:
        return active
    return {v for v in active if state.weights.get(v, 0.0) > 0}


def gate_failures(
    results: LiveResults, guardrails: Sequence[Guardrail], min_units: int, arms: set[str]
) -> list[str]:
    """Why a gated stage may not start yet (empty when every guardrail holds with enough data)."""
    problems = []
    need_control = max([min_units, *(g.min_units for g in guardrails)])
    have = results.units.get(results.control, 0)
    if have < need_control:
        problems.append(f"control has {have} units, needs {need_control}")
    for variant in sorted(arms):
        if results.units.get(variant, 0) < min_units:
            problems.append(
                f"{variant} has {results.units.get(variant, 0)} units, needs {min_units}"
            )
        for g in guardrails:
            checks = results.checks_for(g, variant)
            need = max(min_units, g.min_units)
            if not checks:
                problems.append(f"{g.metric} of {variant}: no data yet")
            for c in checks:
                if c.breached or not c.within:
                    problems.append(f"{c.metric} of {variant} not within bound ({c.describe()})")
                elif c.units < need:
                    problems.append(f"{c.metric} of {variant}: {c.units} units, needs {need}")
    return problems


def _step(step: Step) -> Decision:
    action: DecisionAction = "advance"
    if step.action == "start_winner":
        action = "start_winner"
    elif step.action == "complete":
        action = "complete"
    return Decision(action, step.state, step.reason)
