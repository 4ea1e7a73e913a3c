"""Bandit allocation through the controller and the state backend, as ``abllm serve`` runs it.

The controller reads live reward statistics, stores new weights in the state backend (one
``reweight`` audit row each: the weights' history) and every process assigns new units with
them; units already assigned keep their arm (sticky store). Seeded simulation from the rollout
issue: arms at 70 % and 80 % success over 20,000 units.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from abllm.assign import assign
from abllm.assign.sticky import MemoryStickyStore, StickyAssigner
from abllm.bandit import ArmStats
from abllm.config import Experiment, loads_experiments
from abllm.rollout import LiveResults, RolloutController
from abllm.state import ExperimentState, StateStore, open_state

T0 = datetime(2024, 6, 1, tzinfo=UTC)
RATES = {"control": 0.70, "better": 0.80}
CONFIG = """
experiments:
  - id: exp_bandit
    variants:
      - {id: control, control: true, llm: {model: m}}
      - {id: better, llm: {model: m}}
    metrics:
      - {name: thumbs_up, type: proportion, event: feedback, field: thumbs_up, role: primary}
    bandit: {reward_metric: thumbs_up, kind: bernoulli, floor: 0.05, update_every_s: 60}
"""


def bandit_experiment() -> Experiment:
    return loads_experiments(CONFIG).experiments[0]


class Counts:
    """A results source over in-memory reward counts (what the analysis would report)."""

    def __init__(self) -> None:
        self.n = dict.fromkeys(RATES, 0)
        self.wins = dict.fromkeys(RATES, 0)

    def __call__(self, e: Experiment, s: ExperimentState, now: datetime) -> LiveResults:
        rewards = {v: ArmStats(self.n[v], self.wins[v], self.wins[v]) for v in RATES if self.n[v]}
        return LiveResults(e.id, "control", units=dict(self.n), rewards=rewards, as_of=now)


def simulate(store: StateStore, seed: int, *, bandit: bool, units: int = 20_000, batch: int = 500):
    """Units arrive in batches; the controller checks between batches. Returns
    (regret, share of the better arm in the last 5,000 units)."""
    exp = bandit_experiment()
    if not bandit:
        exp = exp.model_copy(update={"bandit": None})
    rng = np.random.default_rng(seed)
    counts = Counts()
    controller = RolloutController(store, [exp], counts, hooks=[], clock=lambda: T0)
    controller.register()
    regret, late_better, arms = 0.0, 0, []
    for b in range(units // batch):
        controller.tick(T0 + timedelta(minutes=b + 1))
        state = store.get(exp.id)
        assert state is not None
        runtime = state.runtime()
        for i in range(batch):
            variant = assign(exp, f"s{seed}-u{b}-{i}", state=runtime).variant_id
            assert variant is not None
            won = bool(rng.random() < RATES[variant])
            counts.n[variant] += 1
            counts.wins[variant] += won
            regret += RATES["better"] - RATES[variant]
            arms.append(variant)
    late_better = sum(a == "better" for a in arms[-5000:])
    return regret, late_better / 5000


@pytest.mark.parametrize("seed", [11, 12])
def test_the_better_arm_takes_the_traffic_and_regret_falls(seed: int) -> None:
    store = open_state("memory://")
    fixed_store = open_state("memory://")
    try:
        regret, late_share = simulate(store, seed, bandit=True)
        fixed_regret, fixed_share = simulate(fixed_store, seed, bandit=False)
        assert late_share > 0.80
        assert 0.45 < fixed_share < 0.55
        assert regret < 0.4 * fixed_regret  # fixed split: 20,000 x 0.05 = 1,000
        history = [e for e in store.audit("exp_bandit", limit=1000) if e.action == "reweight"]
        assert len(history) >= 2  # no data: even split; then toward the better arm
        assert all("weights" in e.changes and e.actor == "controller" for e in history)
        assert history[0].changes["weights"][0] is None
        last = history[-1].changes["weights"][1]
        assert last["better"] > 0.9 and last["control"] >= 0.05  # the exploration floor holds
    finally:
        store.close()
        fixed_store.close()


def test_every_process_allocates_alike_and_units_keep_their_arm(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite"
    one, two = open_state(url), open_state(url)  # two processes' connections to one backend
    try:
        exp = bandit_experiment()
        counts = Counts()
        controller = RolloutController(one, [exp], counts, hooks=[])
        controller.register()
        sticky = StickyAssigner(MemoryStickyStore())
        before = one.get(exp.id)
        assert before is not None
        first = {f"u{i}": sticky.assign(exp, f"u{i}", state=before.runtime()) for i in range(200)}
        counts.n, counts.wins = {"control": 400, "better": 400}, {"control": 280, "better": 330}
        outcome = controller.tick(T0)[0]
        assert outcome.applied and outcome.decision.action == "reweight"
        after_one, after_two = one.get(exp.id), two.get(exp.id)
        assert after_one is not None and after_two is not None
        assert after_one.weights == after_two.weights
        assert after_one.weights is not None and after_one.weights["better"] > 0.9
        for unit in (f"n{i}" for i in range(100)):  # new units: the same draw everywhere
            a = assign(exp, unit, state=after_one.runtime()).variant_id
            assert a == assign(exp, unit, state=after_two.runtime()).variant_id
        for unit, a in first.items():  # assigned units keep their arm while weights move
            assert sticky.assign(exp, unit, state=after_two.runtime()).variant_id == a.variant_id
        # within update_every_s nothing moves again
        assert not controller.tick(T0 + timedelta(seconds=30))[0].applied
    finally:
        one.close()
        two.close()


def test_paused_arms_get_no_bandit_weight() -> None:
    from abllm.state import replace

    store = open_state("memory://")
    try:
        exp = loads_experiments(
            CONFIG.replace(
                "      - {id: better, llm: {model: m}}",
                "      - {id: better, llm: {model: m}}\n      - {id: third, llm: {model: m}}",
            )
        ).experiments[0]
        counts = Counts()
        controller = RolloutController(store, [exp], counts, hooks=[])
        controller.register()
        store.apply(exp.id, lambda s: replace(s, paused_variants=("third",)), actor="ops")
        counts.n, counts.wins = {"control": 50, "better": 50}, {"control": 35, "better": 40}
        controller.tick(T0)
        state = store.get(exp.id)
        assert state is not None and state.weights is not None
        assert state.weights["third"] == 0.0
        assert state.weights["control"] >= 0.05 and state.weights["better"] >= 0.05
    finally:
        store.close()


def test_rewards_come_from_the_analysis_of_stored_feedback() -> None:
    """The same step on real events: exposures and thumbs-up feedback in the embedded store."""
    from abllm.events import Event, open_store
    from abllm.rollout import AnalysisResults

    exp = bandit_experiment()
    events = open_store("duckdb:///:memory:")
    store = open_state("memory://")
    try:
        rng = np.random.default_rng(5)
        batch = []
        for variant, rate in (("control", 0.5), ("better", 0.8)):
            for i in range(300):
                unit = f"{variant}-{i}"
                common = {"experiment_id": exp.id, "variant_id": variant, "unit_id": unit}
                batch.append(Event(type="exposure", ts=T0, **common))
                thumbs = bool(rng.random() < rate)
                batch.append(Event(type="feedback", ts=T0, metrics={"thumbs_up": thumbs}, **common))
        events.append(batch)
        controller = RolloutController(store, [exp], AnalysisResults(events), hooks=[])
        controller.register()
        outcome = controller.tick(T0 + timedelta(hours=1))[0]
        assert outcome.error is None and outcome.applied, outcome
        state = store.get(exp.id)
        assert state is not None and state.weights is not None
        assert state.weights["better"] > 0.9 and state.weights["control"] >= 0.05
        assert "bandit on thumbs_up" in store.audit(exp.id)[-1].reason
    finally:
        store.close()
        events.close()
