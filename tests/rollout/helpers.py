"""Experiments and live results for the rollout tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from abllm.config import Experiment, loads_experiments
from abllm.rollout import GuardrailCheck, LiveResults

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def experiment(**overrides: Any) -> Experiment:
    """A three-arm experiment with seed 001's stages and two guardrails."""
    data: dict[str, Any] = {
        "id": "exp_r",
        "variants": [
            {"id": "control", "control": True, "weight": 80, "llm": {"model": "sim-small"}},
            {"id": "a", "weight": 10, "llm": {"model": "sim-small"}},
            {"id": "b", "weight": 10, "llm": {"model": "sim-large"}},
        ],
        "guardrails": [
            {"metric": "error_rate", "max_ratio": 1.5, "min_units": 50, "action": "pause"},
            {"metric": "p95_latency_ms", "max_ratio": 1.5, "min_units": 50, "action": "rollback"},
        ],
        "rollout": {
            "stages": [
                {"name": "canary", "weights": {"control": 80, "a": 10, "b": 10}},
                {
                    "name": "ramp-1",
                    "weights": {"control": 60, "a": 20, "b": 20},
                    "gated": True,
                    "min_units": 100,
                },
                {
                    "name": "ramp-2",
                    "weights": {"control": 40, "a": 30, "b": 30},
                    "gated": True,
                    "min_units": 200,
                },
            ],
        },
    }
    data.update(overrides)
    return Experiment.model_validate(data)


def schedule_experiment() -> Experiment:
    """Seed 000's day schedule: 5 % on day 0 … 100 % on day 10."""
    text = """
experiments:
  - id: exp_days
    variants:
      - {id: control, control: true, llm: {model: m}}
      - {id: t, llm: {model: m}}
    rollout:
      stages:
        - {traffic: 5, after_days: 0}
        - {traffic: 10, after_days: 2}
        - {traffic: 25, after_days: 5}
        - {traffic: 50, after_days: 7}
        - {traffic: 100, after_days: 10}
"""
    return loads_experiments(text).experiments[0]


def check(
    variant: str,
    metric: str = "error_rate",
    *,
    breached: bool = False,
    value: float = 0.01,
    bound: float = 0.02,
    units: int = 500,
    action: str = "pause",
) -> GuardrailCheck:
    return GuardrailCheck(metric, variant, breached, value, bound, units, action)


def healthy(units: int = 500, arms: tuple[str, ...] = ("a", "b")) -> LiveResults:
    checks = []
    for v in arms:
        checks.append(check(v, units=units))
        checks.append(
            check(v, "p95_latency_ms", value=500, bound=900, units=units, action="rollback")
        )
    return LiveResults(
        "exp_r", "control", {"control": units * 4, **dict.fromkeys(arms, units)}, tuple(checks)
    )
