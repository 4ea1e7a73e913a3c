"""The controller's schedule and leases in one process: per-experiment intervals, one actor."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from abllm.config import Experiment
from abllm.rollout import LiveResults, ResultsSource, RolloutController
from abllm.rollout.loop import ControllerLoop
from abllm.state import ExperimentState, StateStore, open_state
from abllm.state.lease import controller_lease, leases_for

from .helpers import T0, experiment, healthy


def test_each_experiment_is_checked_at_its_own_interval() -> None:
    store = open_state("memory://")
    seen: dict[str, int] = {}

    def results(e: Experiment, s: ExperimentState, now: datetime) -> LiveResults:
        seen[e.id] = seen.get(e.id, 0) + 1
        return healthy()

    fast = experiment(id="fast", rollout={"stages": [], "check_interval_s": 0.05})
    slow = experiment(id="slow", rollout={"stages": [], "check_interval_s": 30})
    quiet = experiment(id="quiet", guardrails=[], rollout=None)  # nothing to watch
    controller = RolloutController(store, [fast, slow, quiet], results, hooks=[])
    controller.register()
    loop = ControllerLoop(controller).start()
    try:
        time.sleep(0.6)
        status = loop.status()
    finally:
        loop.close()
        store.close()
    assert seen.get("fast", 0) >= 4 and seen.get("slow") == 1 and "quiet" not in seen
    assert set(status["experiments"]) == {"fast", "slow"}
    assert status["experiments"]["slow"]["lag_s"] == 0.0
    assert status["experiments"]["fast"]["last_tick_s"] is not None


def test_only_the_lease_holder_acts_and_a_clean_stop_hands_over(tmp_path: Path) -> None:
    store: StateStore = open_state(f"sqlite:///{tmp_path}/state.sqlite")
    exp = experiment()
    calls: list[str] = []

    def results(name: str) -> ResultsSource:
        def source(e: Experiment, s: ExperimentState, now: datetime) -> LiveResults:
            calls.append(name)
            return healthy()

        return source

    one = RolloutController(store, [exp], results("one"), hooks=[], leases=leases_for(store),
                            holder="one")  # fmt: skip
    two = RolloutController(store, [exp], results("two"), hooks=[], leases=leases_for(store),
                            holder="two")  # fmt: skip
    one.register()
    assert one.tick(T0)[0].decision.reason != "lease held elsewhere"
    skipped = two.tick(T0)[0]
    assert skipped.decision.reason == "lease held elsewhere" and not skipped.applied
    assert calls == ["one"]
    info = leases_for(store).holder(controller_lease(exp.id))
    assert info is not None and info.holder == "one"
    one.close()  # releases: the other process takes over at its next check
    two.tick(T0)
    assert calls == ["one", "two"]
    assert two.holds(exp.id) and not one.holds(exp.id)
    store.close()
