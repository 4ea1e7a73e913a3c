"""Bandit weights for the controller: live reward statistics -> new ``weights`` in the state.

The controller calls :func:`reweight` every ``bandit.update_every_s`` for an experiment with a
``bandit:`` block. The new weights are Thompson sampling's P(best) per arm with the
exploration floor (:func:`abllm.bandit.allocation`, randomized probability matching, Scott
2010), seeded with the state version so every process that recomputes them gets the same
numbers. They are stored like any other change — one audit row whose ``changes`` hold the old
and new weights, so the audit log is the weights' history — and every gateway process reads
them from the state backend; new units are drawn with them, units already assigned keep their
arm (sticky assignments, ``abllm serve --sticky auto``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from abllm.bandit import ArmStats, state_for_experiment
from abllm.config import Experiment
from abllm.rollout.results import LiveResults
from abllm.state import ExperimentState, Transition, replace

#: Monte Carlo draws for P(best): standard error at most 0.5/sqrt(draws) = 0.005.
DRAWS = 10_000


def reward_stats(kind: str, n: float, mean: float, sd: float) -> ArmStats | None:
    """An arm's reward statistics from the analysis' per-arm figures (None without data).

    The analysis reports ``n`` units, their mean and standard deviation; the sums follow:
    Σy = n·mean and Σy² = (n − 1)·sd² + n·mean². For 0/1 rewards Σy is the success count.
    """
    if n <= 0 or not math.isfinite(mean):
        return None
    total = n * mean
    if kind == "bernoulli":
        successes = min(max(round(total), 0), round(n))
        return ArmStats(float(n), float(successes), float(successes))
    var = sd * sd if math.isfinite(sd) else 0.0
    return ArmStats(float(n), total, max((n - 1) * var + n * mean * mean, 0.0))


def rewards_from_result(experiment: Experiment, result: Any) -> dict[str, ArmStats]:
    """Per-arm reward statistics of the bandit's metric from an ``ExperimentResult``."""
    config = experiment.bandit
    if config is None:
        return {}
    metric = result.metrics.get(config.reward_metric)
    if metric is None:
        return {}
    out = {}
    for variant, arm in metric.arms.items():
        stats = reward_stats(config.kind, float(arm.n), float(arm.mean), float(arm.sd))
        if stats is not None:
            out[str(variant)] = stats
    return out


def _share(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{v} {w:.0%}" for v, w in weights.items())


def reweight(
    experiment: Experiment, state: ExperimentState, live: LiveResults, now: datetime
) -> Transition | None:
    """The bandit's next weights as a state change; None when nothing should move.

    Nothing moves while a winner is rolled out (the rollout owns the split) or when fewer than
    two arms are still active (paused arms get no weight).
    """
    config = experiment.bandit
    if config is None or state.winner is not None:
        return None
    ids = [v.id for v in experiment.variants]
    active = [v for v in ids if v not in state.paused_variants]
    if len(active) < 2:
        return None
    bandit = state_for_experiment(experiment, config).with_stats(
        {v: s for v, s in live.rewards.items() if v in ids}, now
    )
    paused = [v for v in ids if v not in active]
    raw = bandit.allocation(DRAWS, config.floor, rng=state.version, exclude=paused)
    weights = {v: round(raw.get(v, 0.0), 4) for v in ids}
    if state.weights is not None and dict(state.weights) == weights:
        return None
    units = sum(int(s.n) for s in bandit.arms.values())
    reason = (
        f"bandit on {config.reward_metric}: weights {_share(weights)} from {units:,} units "
        f"(floor {config.floor:.0%})"
    )
    return Transition(replace(state, weights=weights), "reweight", reason)
