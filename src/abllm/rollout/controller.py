"""The rollout controller: on a schedule, evaluate guardrails on live results and act.

Each tick, for every running experiment: read its state, get live results (the analysis over
the event store), ask the pure policy what to do, store the decision (one audit row) and call
the alert hooks. The write is conditional on the state not having changed since it was read,
so a human's kill or rollback between read and write always wins over the controller.

The clock is injected (``clock``), so a simulation drives days of rollout in milliseconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from abllm.config import Experiment
from abllm.errors import AbllmError
from abllm.rollout.actions import register_experiments
from abllm.rollout.alerts import Alert, AlertHook, LogAlert, WebhookAlert
from abllm.rollout.live import ResultsSource
from abllm.rollout.policy import Decision, decide
from abllm.rollout.results import GuardrailCheck
from abllm.rollout.stages import plan_of
from abllm.state import ExperimentState, StateStore, Transition, utcnow

log = logging.getLogger("abllm.rollout")


@dataclass(frozen=True)
class Outcome:
    """What one tick did for one experiment."""

    experiment_id: str
    decision: Decision
    applied: bool
    state: ExperimentState | None = None
    error: str | None = None


@dataclass
class RolloutController:
    """Evaluates guardrails and moves stages for ``experiments`` every ``interval_s``.

    Example::

        controller = RolloutController(state_store, experiments, AnalysisResults(events))
        controller.register()            # refuses live experiments whose variants changed
        controller.start()               # background thread; or call tick() yourself
    """

    store: StateStore
    experiments: Sequence[Experiment]
    results: ResultsSource
    hooks: Sequence[AlertHook] = field(default_factory=lambda: [LogAlert()])
    clock: Callable[[], datetime] = utcnow
    actor: str = "controller"
    interval_s: float | None = None
    #: Called as ``task(now, fire)`` on every tick, e.g. scheduled eval replays
    #: (``abllm.eval.schedule.EvalScheduler.tick``); ``fire`` sends an alert through the hooks.
    side_tasks: Sequence[Callable[[datetime, Callable[[Alert], None]], None]] = ()
    _alerted: set[tuple[str, int, str, str]] = field(default_factory=set, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _webhooks: dict[str, WebhookAlert] = field(default_factory=dict, init=False)

    @property
    def interval(self) -> float:
        """Seconds between ticks: ``interval_s``, else the shortest plan ``check_interval_s``."""
        if self.interval_s is not None:
            return self.interval_s
        return min((plan_of(e).check_interval_s for e in self.experiments), default=60.0)

    def register(self) -> dict[str, ExperimentState]:
        """Record every definition (Conflict when a live experiment's variants changed)."""
        return register_experiments(
            self.store, self.experiments, actor=self.actor, now=self.clock()
        )

    def tick(self, now: datetime | None = None) -> list[Outcome]:
        """One evaluation of every running experiment; never raises for one experiment."""
        now = now or self.clock()
        outcomes = []
        for experiment in self.experiments:
            if experiment.status != "running":
                continue
            try:
                outcomes.append(self._tick_one(experiment, now))
            except AbllmError as exc:
                log.warning("rollout tick for %s failed: %s", experiment.id, exc.message)
                outcomes.append(Outcome(experiment.id, Decision("none"), False, error=exc.message))
            except Exception as exc:  # one broken experiment must not stop the others
                log.exception("rollout tick for %s failed", experiment.id)
                outcomes.append(Outcome(experiment.id, Decision("none"), False, error=str(exc)))
        for task in self.side_tasks:
            try:
                task(now, self._fire)
            except Exception:  # a broken side task must not stop the controller
                log.exception("controller side task %r failed", task)
        return outcomes

    def _tick_one(self, experiment: Experiment, now: datetime) -> Outcome:
        state = self.store.get(experiment.id)
        if state is None or state.definition is None:
            register_experiments(self.store, [experiment], actor=self.actor, now=now)
            state = self.store.get(experiment.id)
            assert state is not None
        if state.killed or state.paused or state.status in ("paused", "stopped", "completed"):
            return Outcome(experiment.id, Decision("none", reason="not active"), False, state)
        if not experiment.guardrails and experiment.rollout is None:
            return Outcome(experiment.id, Decision("none", reason="nothing to watch"), False, state)
        live = self.results(experiment, state, now)
        decision = decide(state, live, experiment.guardrails, plan_of(experiment), now)
        self._alert_only(experiment.id, state, decision.alerts, now)
        if decision.state is None or decision.action in ("none", "alert"):
            return Outcome(experiment.id, decision, False, state)
        wanted, seen = decision.state, state.version
        action = decision.action
        assert action in ("pause_variant", "rollback", "advance", "start_winner", "complete")

        last: list[Transition | None] = [None]

        def change(current: ExperimentState) -> Transition | None:
            # someone acted since we read: their change wins and this decision is dropped
            last[0] = (
                None if current.version != seen else Transition(wanted, action, decision.reason)
            )
            return last[0]

        stored = self.store.apply(experiment.id, change, actor=self.actor, now=now)
        applied = last[0] is not None and stored.version == seen + 1
        if applied:
            self._announce(experiment.id, decision, stored, now)
        return Outcome(experiment.id, decision, applied, stored)

    def _announce(
        self, experiment_id: str, decision: Decision, state: ExperimentState, now: datetime
    ) -> None:
        severity = "warning" if decision.breaches else "info"
        alert = Alert(
            experiment_id=experiment_id,
            kind=decision.action,
            message=decision.reason,
            ts=now,
            state_version=state.version,
            breaches=decision.breaches,
            severity=severity,
        )
        self._fire(alert)

    def _alert_only(
        self,
        experiment_id: str,
        state: ExperimentState,
        checks: Sequence[GuardrailCheck],
        now: datetime,
    ) -> None:
        """Alert once per guardrail, arm and state version (not every minute)."""
        fresh = []
        for c in checks:
            key = (experiment_id, state.version, c.metric, c.variant)
            if key not in self._alerted:
                self._alerted.add(key)
                fresh.append(c)
        if fresh:
            message = "guardrail breached: " + "; ".join(c.describe() for c in fresh)
            self._fire(Alert(experiment_id, "alert", message, now, state.version, tuple(fresh)))

    def _hooks_for(self, experiment_id: str) -> list[AlertHook]:
        hooks = list(self.hooks)
        url = next(
            (plan_of(e).alert_webhook for e in self.experiments if e.id == experiment_id), None
        )
        if url:
            if url not in self._webhooks:
                self._webhooks[url] = WebhookAlert(url)
            hooks.append(self._webhooks[url])
        return hooks

    def _fire(self, alert: Alert) -> None:
        for hook in self._hooks_for(alert.experiment_id):
            try:
                hook(alert)
            except Exception:  # a broken hook must not stop the controller
                log.exception("alert hook %r failed", hook)

    # -- background loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Tick every ``interval`` seconds until :meth:`close`."""
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def start(self) -> RolloutController:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="abllm-rollout", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the loop (the store stays open)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for hook in self._webhooks.values():
            hook.close()
