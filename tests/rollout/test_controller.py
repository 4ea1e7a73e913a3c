"""The controller: applies decisions once, lets humans win races, alerts by log and webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace as dc_replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from abllm.config import Experiment
from abllm.rollout import Alert, LiveResults, RolloutController, kill
from abllm.rollout.alerts import WebhookAlert
from abllm.state import ExperimentState, StateStore, open_state

from .helpers import T0, check, experiment, healthy


@pytest.fixture
def store() -> Iterator[StateStore]:
    s = open_state("memory://")
    yield s
    s.close()


class Webhook:
    """A local HTTP receiver collecting JSON bodies."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers["Content-Length"])
                bodies.append(json.loads(self.rfile.read(size)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.close()


def breached(results: LiveResults, variant: str = "b", action: str = "pause") -> LiveResults:
    bad = check(variant, breached=True, value=0.09, bound=0.03, action=action)
    return dc_replace(results, checks=(*results.checks, bad))


def test_breach_pauses_once_and_calls_every_hook(store: StateStore, webhook: Webhook) -> None:
    exp = experiment(rollout={"stages": [], "alert_webhook": webhook.url})
    alerts: list[Alert] = []
    calls: list[datetime] = []

    def results(e: Experiment, s: ExperimentState, now: datetime) -> LiveResults:
        calls.append(now)
        return breached(healthy())

    controller = RolloutController(store, [exp], results, hooks=[alerts.append], clock=lambda: T0)
    controller.register()
    first = controller.tick(T0)
    assert first[0].applied and first[0].decision.action == "pause_variant"
    second = controller.tick(T0 + timedelta(minutes=1))
    assert not second[0].applied  # the arm is already paused
    assert [a.kind for a in alerts] == ["pause_variant"]
    hook = controller._webhooks[webhook.url]
    hook.flush()
    controller.close()
    assert len(webhook.bodies) == 1
    body = webhook.bodies[0]
    assert body["kind"] == "pause_variant" and body["experiment_id"] == "exp_r"
    assert body["breaches"][0]["variant"] == "b" and "error_rate of b" in body["text"]
    assert [r.action for r in store.audit("exp_r")] == ["register", "pause_variant"]


def test_a_human_change_between_read_and_write_wins(store: StateStore) -> None:
    exp = experiment(rollout=None)

    def results(e: Experiment, s: ExperimentState, now: datetime) -> LiveResults:
        kill(store, e.id, actor="ops", reason="on fire")  # lands while the controller thinks
        return breached(healthy())

    controller = RolloutController(store, [exp], results, hooks=[])
    controller.register()
    outcome = controller.tick(T0)[0]
    assert outcome.decision.action == "pause_variant" and not outcome.applied
    final = store.get("exp_r")
    assert final is not None and final.killed and final.paused_variants == ()
    assert [r.action for r in store.audit("exp_r")] == ["register", "kill"]


def test_alert_only_guardrail_alerts_once_per_state(store: StateStore) -> None:
    alerts: list[Alert] = []
    results = breached(healthy(units=10), "a", action="alert")
    controller = RolloutController(
        store, [experiment()], lambda e, s, n: results, hooks=[alerts.append]
    )
    for minute in range(3):
        controller.tick(T0 + timedelta(minutes=minute))
    assert [a.kind for a in alerts] == ["alert"]
    assert [r.action for r in store.audit("exp_r")] == ["register"]


def test_one_failing_experiment_does_not_stop_the_others(store: StateStore) -> None:
    good = experiment(id="exp_ok", rollout=None)
    bad = experiment(id="exp_bad", rollout=None)

    def results(e: Experiment, s: ExperimentState, now: datetime) -> LiveResults:
        if e.id == "exp_bad":
            raise RuntimeError("store exploded")
        return dc_replace(breached(healthy()), experiment_id=e.id)

    hooks: list[Alert] = []

    def broken_hook(alert: Alert) -> None:
        raise RuntimeError("hook down")

    controller = RolloutController(store, [bad, good], results, hooks=[broken_hook, hooks.append])
    outcomes = {o.experiment_id: o for o in controller.tick(T0)}
    assert outcomes["exp_bad"].error == "store exploded"
    assert outcomes["exp_ok"].applied and len(hooks) == 1


def test_background_loop_and_interval(store: StateStore) -> None:
    from abllm.rollout.loop import ControllerLoop

    seen = threading.Event()

    def results(e: Experiment, s: ExperimentState, now: datetime) -> LiveResults:
        seen.set()
        return healthy()

    exp = experiment(rollout={"stages": [], "check_interval_s": 0.05})
    controller = RolloutController(store, [exp], results, hooks=[])
    loop = ControllerLoop(controller).start()
    try:
        assert controller.interval == 0.05
        assert seen.wait(2)
        status = loop.status()
        assert status["running"] and status["experiments"]["exp_r"]["interval_s"] == 0.05
    finally:
        loop.close()
    assert not loop.running


def test_webhook_failures_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    hook = WebhookAlert("http://127.0.0.1:9/nowhere", timeout_s=0.2, attempts=2)
    hook(Alert("e", "pause_variant", "x", T0))
    hook.flush()
    hook.close()
    assert "alert webhook http://127.0.0.1:9/nowhere failed" in caplog.text


def test_serving_state_registers_and_refuses_changed_variants(tmp_path: Any) -> None:
    from abllm.config import ExperimentFile
    from abllm.errors import Conflict
    from abllm.rollout import open_serving_state

    url = f"sqlite:///{tmp_path}/state.sqlite"
    config = ExperimentFile(experiments=[experiment()])
    runtime = open_serving_state(config, state_url=url)
    try:
        assert runtime.view.get("exp_r").weights == {"control": 80, "a": 10, "b": 10}
        kill(runtime.store, "exp_r", actor="ops")
        assert runtime.view.get("exp_r").killed
    finally:
        runtime.close()
    changed = experiment(
        variants=[
            {"id": "control", "control": True, "llm": {"model": "m"}},
            {"id": "a", "llm": {"model": "m"}},
        ],
        rollout=None,
    )
    with pytest.raises(Conflict, match="start a new version"):
        open_serving_state(ExperimentFile(experiments=[changed]), state_url=url)
    again = open_serving_state(config, state_url=url)  # a restart: the kill holds
    try:
        assert again.view.get("exp_r").killed
    finally:
        again.close()
