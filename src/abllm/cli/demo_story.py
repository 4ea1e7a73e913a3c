"""The demo's rollout on a simulated clock: traffic, a controller check, what it did; repeat.

Each round sends new simulated users through the real gateway, flushes their events to the
store and runs one check of the real rollout controller with the clock moved forward by
``STEP`` (twelve hours), so a week of staged rollout — canary, ramps, a guardrail pause, the
SHIP recommendation, the winner rollout 75 → 95 → 100 % — plays out in about half a minute.
Lines stay within 80 columns (long reasons are wrapped, never cut).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.console import Console

from abllm.config import Experiment
from abllm.rollout import RolloutController, plan_of, position
from abllm.rollout.controller import Outcome
from abllm.state import AuditEntry, ExperimentState, StateStore

if TYPE_CHECKING:
    from abllm.analysis import ExperimentResult

STEP = timedelta(hours=12)
WIDTH = 80
MAX_ROUNDS = 24


def hours(t0: datetime, ts: datetime) -> str:
    """``+36h`` on the simulated clock."""
    return f"+{round((ts - t0).total_seconds() / 3600):d}h"


def _say(console: Console, head: str, text: str, indent: int = 8) -> None:
    lines = textwrap.wrap(text, WIDTH - 1, initial_indent=head, subsequent_indent=" " * indent) or [
        head
    ]
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@dataclass
class Story:
    """What happened, for the summary and the test: pauses, the SHIP, the last state."""

    paused: list[str] = field(default_factory=list)
    shipped: ExperimentResult | None = None  # the result that recommended SHIP
    ship_at: datetime | None = None
    state: ExperimentState | None = None
    rounds: int = 0


def _label(state: ExperimentState, experiment: Experiment) -> str:
    plan = plan_of(experiment)
    if state.status == "completed":
        return f"completed: {state.winner} 100 %"
    if state.winner is not None:
        return f"winner {state.winner_percent:g} %"
    if state.stage is not None and plan.stages:
        stage = plan.stages[state.stage]
        traffic = f" {stage.traffic:g} %" if stage.traffic is not None else ""
        return f"{stage.name or f'stage {state.stage + 1}'}{traffic}"
    return position(state, plan)


def _what(outcome: Outcome) -> str:
    d = outcome.decision
    if outcome.error:
        return f"check failed: {outcome.error}"
    if d.action == "pause_variant":
        arms = ", ".join(sorted({c.variant for c in d.breaches}))
        return f"PAUSED {arms}: {d.reason}"
    if d.action in ("advance", "start_winner", "complete", "rollback"):
        return f"{d.action.upper().replace('_', ' ')}: {d.reason}"
    return f"waiting: {_first(d.waiting or d.reason or 'nothing due')}"


def _first(text: str) -> str:
    """The first of the ``;``-separated reasons, whole, and how many more there are."""
    parts = [p.strip() for p in text.replace("gate: ", "gate: ;", 1).split(";") if p.strip()]
    if len(parts) > 1 and parts[0] == "gate:":
        parts = [f"gate: {parts[1]}", *parts[2:]]
    head = parts[0].split(" (", 1)[0] if parts else text
    more = len(parts) - 1
    return f"{head} (+{more} more)" if more > 0 else head


def play(
    console: Console,
    experiment: Experiment,
    controller: RolloutController,
    store: StateStore,
    send: Callable[[int, int], int],
    last_result: Callable[[], ExperimentResult | None],
    t0: datetime,
    users: int,
) -> Story:
    """Rounds of ``send(round, users)`` then one controller check, until the rollout completes.

    ``send`` returns how many requests were made; ``last_result`` gives the analysis result
    of the latest check (to catch the SHIP recommendation with its lift and CI).
    """
    story = Story()
    console.print(
        f"Simulated clock: a controller check every {STEP.total_seconds() / 3600:g} h "
        f"(winner steps: at their end); {users:,} new users before each.\n",
        highlight=False,
    )
    now = t0
    plan = plan_of(experiment)
    for k in range(1, MAX_ROUNDS + 1):
        state = store.get(experiment.id)
        assert state is not None
        if state.status == "completed":
            break
        step = STEP
        if state.winner is not None and state.winner_stage is not None:
            # no waiting: jump to the end of the winner step (24 h, 48 h, ...)
            step = max(STEP, timedelta(hours=plan.winner[state.winner_stage].hours))
        now += step
        before = _label(state, experiment)
        send(k, users if state.winner is None else max(users // 4, 50))
        outcome = controller.tick_experiment(experiment, now)
        story.rounds = k
        result = last_result()
        rec = result.recommendation if result is not None else None
        if story.shipped is None and rec is not None and rec.decision == "SHIP":
            story.shipped, story.ship_at = result, now
        if outcome.decision.action == "pause_variant" and outcome.applied:
            story.paused += sorted({c.variant for c in outcome.decision.breaches})
        what = _what(outcome)
        if rec is not None and outcome.decision.waiting and "winner" in outcome.decision.waiting:
            what = f"analysis: {rec.decision}: {_first(rec.reason)}"
        _say(console, f"{hours(t0, now):>5}  {before:<16} ", what, indent=24)
    story.state = store.get(experiment.id)
    return story


def print_ship(console: Console, story: Story, t0: datetime) -> None:
    """The recommendation that started the winner rollout, with its lift and CI."""
    result = story.shipped
    if result is None or story.ship_at is None:
        console.print("\nNo SHIP recommendation yet.", highlight=False)
        return
    rec = result.recommendation
    winner = rec.variant or result.control
    console.print("")
    _say(console, f"At {hours(t0, story.ship_at)} the analysis said SHIP {rec.variant}: ", "")
    _say(console, "  ", rec.reason, indent=2)
    for name, metric in result.metrics.items():
        if name != result.primary:
            continue
        for arm in (result.control, winner):
            a = metric.arms[arm]
            _say(
                console,
                f"  {arm:<10} {name} {a.mean:.3f}  (95 % CI {a.ci[0]:.3f} .. {a.ci[1]:.3f}, "
                f"n={a.n:,})",
                "",
            )
        c = metric.comparisons[winner]
        _say(
            console,
            f"  lift       {c.rel_lift:+.1%}  (95 % CI {c.rel_ci[0]:+.1%} .. {c.rel_ci[1]:+.1%})",
            "",
        )


def print_audit(console: Console, entries: list[AuditEntry], t0: datetime) -> None:
    """The audit trail: who changed what, when (simulated time) and why."""
    console.print("\nAudit trail (abllm rollout status shows the same):", highlight=False)
    for e in entries:
        head = f"{hours(t0, e.ts):>5} v{e.version:<3}{e.action:<14}"
        _say(console, head, f"{e.reason or ''} [{e.actor}]", indent=len(head))
