"""The rollout controller: on a schedule, evaluate guardrails on live results and act.

Each tick, for every running experiment with a plan, guardrails or a bandit, if this process
holds the experiment's lease (:mod:`abllm.state.lease`): read its state, get live results (the
analysis over the event store), ask the pure policy what to do, store the decision (one audit
row) and call the alert hooks; when the policy leaves the state alone, a bandit experiment gets
its new weights (:mod:`abllm.rollout.reweight`). The write is conditional on the state not
having changed since it was read, so a human's kill or rollback between read and write always
wins over the controller.

The clock is injected (``clock``), so a simulation drives days of rollout in milliseconds.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from abllm.config import Experiment
from abllm.errors import AbllmError
from abllm.rollout.actions import register_experiments
from abllm.rollout.alerts import Alert, AlertHook, LogAlert, WebhookAlert
from abllm.rollout.live import ResultsSource
from abllm.rollout.policy import Decision, decide
from abllm.rollout.results import GuardrailCheck, LiveResults
from abllm.rollout.stages import plan_of
from abllm.state import ExperimentState, StateStore, Transition, utcnow
from abllm.state.lease import Leases
from abllm.state.lease import controller_lease as lease_name

log = logging.getLogger("abllm.rollout")


def default_holder() -> str:
    """This process's name in leases: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def watched(experiment: Experiment) -> bool:
    """Whether the controller has anything to do for ``experiment``."""
    return bool(experiment.rollout or experiment.guardrails or experiment.bandit)


def check_interval(experiment: Experiment) -> float:
    """``rollout.check_interval_s``, or the bandit's ``update_every_s`` when shorter."""
    interval = plan_of(experiment).check_interval_s
    if experiment.bandit is not None:
        interval = min(interval, experiment.bandit.update_every_s)
    return interval


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
    """Evaluates guardrails, moves stages and updates bandit weights for ``experiments``.

    With ``leases`` (the state backend's, :func:`abllm.state.lease.leases_for`) an experiment
    is only evaluated by the process holding its lease, so many ``abllm serve`` processes on one
    state backend act once. Example::

        controller = RolloutController(state_store, experiments, AnalysisResults(events))
        controller.register()            # refuses live experiments whose variants changed
        ControllerLoop(controller).start()   # background thread; or call tick() yourself
    """

    store: StateStore
    experiments: Sequence[Experiment]
    results: ResultsSource
    hooks: Sequence[AlertHook] = field(default_factory=lambda: [LogAlert()])
    clock: Callable[[], datetime] = utcnow
    actor: str = "controller"
    interval_s: float | None = None
    #: Called as ``task(now, fire)`` on every pass, e.g. scheduled eval replays
    #: (``abllm.eval.schedule.EvalScheduler.tick``); ``fire`` sends an alert through the hooks.
    side_tasks: Sequence[Callable[[datetime, Callable[[Alert], None]], None]] = ()
    leases: Leases | None = None
    holder: str = field(default_factory=default_holder)
    _alerted: set[tuple[str, int, str, str]] = field(default_factory=set, init=False)
    _webhooks: dict[str, WebhookAlert] = field(default_factory=dict, init=False)
    _reweighted: dict[str, datetime] = field(default_factory=dict, init=False)
    _held: set[str] = field(default_factory=set, init=False)

    @property
    def watched(self) -> list[Experiment]:
        """Running experiments with something to act on: a plan, guardrails or a bandit."""
        return [e for e in self.experiments if e.status == "running" and watched(e)]

    def interval_of(self, experiment: Experiment) -> float:
        """Seconds between checks of ``experiment`` (``interval_s`` overrides every one)."""
        if self.interval_s is not None:
            return self.interval_s
        return check_interval(experiment)

    @property
    def interval(self) -> float:
        """The shortest interval of the watched experiments (60 s when none)."""
        return min((self.interval_of(e) for e in self.watched), default=60.0)

    def lease_ttl(self, experiment: Experiment) -> float:
        """How long a lease lasts unrenewed: three missed checks, at least 5 s."""
        return max(3 * self.interval_of(experiment), 5.0)

    def register(self) -> dict[str, ExperimentState]:
        """Record every definition (Conflict when a live experiment's variants changed)."""
        return register_experiments(
            self.store, self.experiments, actor=self.actor, now=self.clock()
        )

    def tick(self, now: datetime | None = None) -> list[Outcome]:
        """One evaluation of every watched experiment; never raises for one experiment."""
        now = now or self.clock()
        outcomes = [self.tick_experiment(e, now) for e in self.watched]
        self.run_side_tasks(now)
        return outcomes

    def run_side_tasks(self, now: datetime | None = None) -> None:
        """Run every ``side_tasks`` entry once; a broken one never stops the controller."""
        now = now or self.clock()
        for task in self.side_tasks:
            try:
                task(now, self._fire)
            except Exception:
                log.exception("controller side task %r failed", task)

    def tick_experiment(self, experiment: Experiment, now: datetime | None = None) -> Outcome:
        """Evaluate one experiment if this process holds (or takes) its lease."""
        now = now or self.clock()
        try:
            if not self._lease(experiment):
                return Outcome(
                    experiment.id, Decision("none", reason="lease held elsewhere"), False
                )
            return self._tick_one(experiment, now)
        except AbllmError as exc:
            log.warning("rollout tick for %s failed: %s", experiment.id, exc.message)
            return Outcome(experiment.id, Decision("none"), False, error=exc.message)
        except Exception as exc:  # one broken experiment must not stop the others
            log.exception("rollout tick for %s failed", experiment.id)
            return Outcome(experiment.id, Decision("none"), False, error=str(exc))

    def holds(self, experiment_id: str) -> bool:
        """Whether this process held ``experiment_id``'s lease at its last check."""
        return self.leases is None or experiment_id in self._held

    def _lease(self, experiment: Experiment) -> bool:
        if self.leases is None:
            return True
        name = lease_name(experiment.id)
        if self.leases.acquire(name, self.holder, self.lease_ttl(experiment)):
            if experiment.id not in self._held:
                log.info("controller %s took the lease of %s", self.holder, experiment.id)
            self._held.add(experiment.id)
            return True
        self._held.discard(experiment.id)
        return False

    def release(self) -> None:
        """Give up every lease this process holds (a clean shutdown hands over at once)."""
        if self.leases is None:
            return
        for experiment_id in sorted(self._held):
            try:
                self.leases.release(lease_name(experiment_id), self.holder)
            except AbllmError as exc:
                log.warning("releasing the lease of %s failed: %s", experiment_id, exc.message)
        self._held.clear()

    def _tick_one(self, experiment: Experiment, now: datetime) -> Outcome:
        state = self.store.get(experiment.id)
        if state is None or state.definition is None:
            register_experiments(self.store, [experiment], actor=self.actor, now=now)
            state = self.store.get(experiment.id)
            assert state is not None
        if state.killed or state.paused or state.status in ("paused", "stopped", "completed"):
            return Outcome(experiment.id, Decision("none", reason="not active"), False, state)
        live = self.results(experiment, state, now)
        decision = decide(state, live, experiment.guardrails, plan_of(experiment), now)
        self._alert_only(experiment.id, state, decision.alerts, now)
        if decision.state is None or decision.action in ("none", "alert"):
            return self._reweight(experiment, state, live, now, decision)
        action = decision.action
        assert action in ("pause_variant", "rollback", "advance", "start_winner", "complete")
        stored, applied = self._apply(
            experiment.id, state.version, Transition(decision.state, action, decision.reason), now
        )
        if applied:
            self._announce(experiment.id, decision, stored, now)
        return Outcome(experiment.id, decision, applied, stored)

    def _apply(
        self, experiment_id: str, seen: int, wanted: Transition, now: datetime
    ) -> tuple[ExperimentState, bool]:
        """Store ``wanted`` only if the state is still at version ``seen``."""
        last: list[Transition | None] = [None]

        def change(current: ExperimentState) -> Transition | None:
            # someone acted since we read: their change wins and this decision is dropped
            last[0] = None if current.version != seen else wanted
            return last[0]

        stored = self.store.apply(experiment_id, change, actor=self.actor, now=now)
        return stored, last[0] is not None and stored.version == seen + 1

    def _reweight(
        self,
        experiment: Experiment,
        state: ExperimentState,
        live: LiveResults,
        now: datetime,
        decision: Decision,
    ) -> Outcome:
        """The bandit's weight update, every ``bandit.update_every_s`` of the clock."""
        config = experiment.bandit
        if config is None:
            return Outcome(experiment.id, decision, False, state)
        last = self._reweighted.get(experiment.id)
        if last is not None and (now - last).total_seconds() < config.update_every_s:
            return Outcome(experiment.id, decision, False, state)
        from abllm.rollout.reweight import reweight

        self._reweighted[experiment.id] = now
        step = reweight(experiment, state, live, now)
        if step is None:
            return Outcome(experiment.id, decision, False, state)
        stored, applied = self._apply(experiment.id, state.version, step, now)
        return Outcome(
            experiment.id, Decision("reweight", step.state, step.reason), applied, stored
        )

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

    def close(self) -> None:
        """Release leases and stop webhook senders (the store stays open)."""
        self.release()
        for hook in self._webhooks.values():
            hook.close()
