"""Rollouts: stages, guardrails and the controller that moves traffic while watching them.

``policy`` is pure (state + live results + guardrails + plan + now -> decision); the
``controller`` applies its decisions under a lease, ``loop`` schedules it (inside
``abllm serve`` or ``abllm rollout run``), ``reweight`` moves bandit weights; ``actions``
are the hand-driven operations (kill, resume, advance, rollback) the CLI and admin API share.
"""

from abllm.rollout.actions import (
    advance,
    kill,
    register_experiment,
    register_experiments,
    resume,
    rollback,
)
from abllm.rollout.alerts import Alert, AlertHook, LogAlert, WebhookAlert
from abllm.rollout.controller import Outcome, RolloutController
from abllm.rollout.live import AnalysisResults, ResultsSource, live_from_result
from abllm.rollout.loop import ControllerLoop
from abllm.rollout.policy import Decision, decide, gate_failures
from abllm.rollout.results import GuardrailCheck, LiveResults
from abllm.rollout.serving import ServingState, open_serving_state
from abllm.rollout.stages import next_step, plan_of, position, previous_step, registered

__all__ = [
    "Alert",
    "AlertHook",
    "AnalysisResults",
    "ControllerLoop",
    "Decision",
    "GuardrailCheck",
    "LiveResults",
    "LogAlert",
    "Outcome",
    "ResultsSource",
    "RolloutController",
    "ServingState",
    "WebhookAlert",
    "advance",
    "decide",
    "gate_failures",
    "kill",
    "live_from_result",
    "next_step",
    "open_serving_state",
    "plan_of",
    "position",
    "previous_step",
    "register_experiment",
    "register_experiments",
    "registered",
    "resume",
    "rollback",
]
