"""A simulated rollout on the ``sim`` provider, driven by a fake clock (a day in seconds).

Every check interval (``check_interval_s: 300``, five simulated minutes) new users arrive, are
assigned with the runtime state the gateway would see, and make calls whose latency and errors
come from the ``sim`` provider's plan for their variant; the events go straight into an
embedded store. The controller then ticks once, on the real analysis. The treatment with 3x
the control's error rate must be paused within the window; the healthy one must advance
through every stage and then through the winner rollout; every change must have exactly one
audit row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from abllm.assign import assign
from abllm.config import Experiment, loads_experiments
from abllm.events import Event, EventStore, open_store
from abllm.providers import ChatRequest
from abllm.providers.sim import plan as sim_plan
from abllm.rollout import Alert, AnalysisResults, RolloutController, advance
from abllm.state import StateStore, open_state

T0 = datetime(2024, 6, 3, 9, tzinfo=UTC)
#: The window: the guardrail's minimum sample (150 units per arm) arrives by the third check
#: (15 min) at this traffic; the always-valid test at alpha 0.01 then needs about 500 units of
#: the flaky arm to be sure of "above 1.5x control" when the truth is 3x (55 min here).
PAUSE_WINDOW = timedelta(minutes=90)
TICK = timedelta(minutes=5)
USERS_PER_TICK = 500
CALLS_PER_USER = 3

CONFIG = """
experiments:
  - id: exp_sim
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {error_rate: 0.02, latency_ms: 400}}
      - id: healthy
        llm: {provider: sim, model: sim-small, sim: {error_rate: 0.02, latency_ms: 380}}
      - id: flaky
        llm: {provider: sim, model: sim-small, sim: {error_rate: 0.06, latency_ms: 400}}
    guardrails:
      - {metric: error_rate, max_ratio: 1.5, min_units: 150, action: pause}
    rollout:
      check_interval_s: 300
      stages:
        - {name: canary, weights: {control: 80, healthy: 10, flaky: 10}}
        - {name: ramp-1, weights: {control: 60, healthy: 20, flaky: 20}, gated: true,
           min_units: 300}
        - {name: ramp-2, weights: {control: 40, healthy: 30, flaky: 30}, gated: true,
           min_units: 600, min_hours: 0.25}
        - {name: even, weights: {control: 34, healthy: 33, flaky: 33}, gated: true,
           min_units: 900}
      winner:
        - {percent: 75, hours: 1}
        - {percent: 95, hours: 2}
        - {percent: 100}
"""


@pytest.fixture
def experiment() -> Experiment:
    return loads_experiments(CONFIG).experiments[0]


@pytest.fixture
def events() -> Iterator[EventStore]:
    store = open_store("duckdb:///:memory:")
    yield store
    store.close()


@pytest.fixture
def state() -> Iterator[StateStore]:
    store = open_state("memory://")
    yield store
    store.close()


def traffic(
    exp: Experiment, store: StateStore, events: EventStore, tick: int, now: datetime
) -> None:
    """One check interval of users: an exposure and a few sim calls each."""
    current = store.get(exp.id)
    runtime = current.runtime() if current is not None else None
    batch = []
    for i in range(USERS_PER_TICK):
        unit = f"u{tick}-{i}"
        a = assign(exp, unit, now=now, state=runtime)
        variant = exp.variant(a.served_variant_id)
        if a.variant_id is not None:
            batch.append(
                Event(
                    type="exposure",
                    ts=now,
                    experiment_id=exp.id,
                    variant_id=a.variant_id,
                    unit_id=unit,
                )
            )
        for call in range(CALLS_PER_USER):
            trace = f"{unit}-{call}"
            # max_tokens=1 keeps the simulated answer short; latency and errors are drawn as usual
            req = ChatRequest(
                model=variant.llm.model,
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=1,
                unit_id=unit,
                trace_id=trace,
            )
            p = sim_plan(req, variant.llm)
            batch.append(
                Event(
                    type="llm_call",
                    ts=now,
                    experiment_id=exp.id,
                    variant_id=a.variant_id,
                    unit_id=unit,
                    trace_id=trace,
                    metrics={"error": p.error_type is not None, "latency_ms": p.latency_ms},
                )
            )
    events.append(batch)


def test_flaky_arm_paused_healthy_arm_rolls_out(
    experiment: Experiment, events: EventStore, state: StateStore
) -> None:
    alerts: list[Alert] = []
    now = T0
    controller = RolloutController(
        state, [experiment], AnalysisResults(events), hooks=[alerts.append], clock=lambda: now
    )
    controller.register()
    assert controller.interval == TICK.total_seconds()
    paused_at = None
    stages_seen = [0]
    for tick in range(60):
        traffic(experiment, state, events, tick, now)
        now += TICK
        for outcome in controller.tick(now):
            assert outcome.error is None, outcome.error
        current = state.get(experiment.id)
        assert current is not None
        if paused_at is None and "flaky" in current.paused_variants:
            paused_at = now
        if current.stage != stages_seen[-1]:
            stages_seen.append(current.stage)  # type: ignore[arg-type]
        if current.stage == 3:
            break
    assert paused_at is not None and paused_at - T0 <= PAUSE_WINDOW, paused_at
    assert stages_seen == [0, 1, 2, 3]
    assert "healthy" not in current.paused_variants
    pause_alerts = [a for a in alerts if a.kind == "pause_variant"]
    assert len(pause_alerts) == 1 and pause_alerts[0].breaches[0].variant == "flaky"
    assert pause_alerts[0].severity == "warning"

    # a decision names the winner; the controller rolls it out 75 % -> 95 % -> 100 %
    advance(state, experiment.id, actor="alice", winner="healthy", reason="ship it", now=now)
    for _ in range(100):
        now += timedelta(minutes=15)
        controller.tick(now)
        current = state.get(experiment.id)
        assert current is not None
        if current.status == "completed":
            break
    assert current.status == "completed" and current.runtime().winner == "healthy"
    assert current.runtime().winner_percent == 100

    rows = state.audit(experiment.id, limit=1000)
    assert [r.action for r in rows] == [
        "register",
        "pause_variant",
        "advance",
        "advance",
        "advance",
        "start_winner",
        "advance",
        "complete",
    ]
    assert [r.version for r in rows] == list(range(1, current.version + 1))  # one row per change
    assert all(r.changes for r in rows)
    assert {r.actor for r in rows} == {"controller", "alice"}
    assert rows[1].changes["paused_variants"] == [[], ["flaky"]]
    assert "error_rate of flaky" in (rows[1].reason or "")
