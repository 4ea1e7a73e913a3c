"""Build a :class:`BanditState` from an experiment's config and its ``bandit:`` block."""

from __future__ import annotations

from abllm.bandit.state import BanditState
from abllm.config.bandit import BanditConfig
from abllm.config.experiment import Experiment
from abllm.errors import ConfigError


def state_for_experiment(experiment: Experiment, config: BanditConfig) -> BanditState:
    """A fresh state with one arm per variant, the reward metric and its direction.

    Raises :class:`ConfigError` (one line per problem, naming the ``bandit.`` field) when the
    block does not fit the experiment. A metric with ``direction: decrease`` (latency, cost)
    makes the lowest mean the best arm.
    """
    problems = config.check(experiment.metrics, len(experiment.variants))
    if problems:
        raise ConfigError([f"experiments.{experiment.id}.{p}" for p in problems])
    metric = next(m for m in experiment.metrics if m.name == config.reward_metric)
    return BanditState.start(
        experiment.id,
        [v.id for v in experiment.variants],
        config.kind,
        reward_metric=metric.name,
        higher_is_better=metric.direction == "increase",
    )
