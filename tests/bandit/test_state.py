"""BanditState: updates, stats-package summaries, JSON round trip, file persistence, config."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from abllm.bandit import (
    ArmStats,
    BanditState,
    BetaPosterior,
    BetaPrior,
    NormalInverseGamma,
    StudentTPosterior,
    load_state,
    save_state,
    state_for_experiment,
)
from abllm.config import Experiment, LLMConfig, Metric, Variant
from abllm.config.bandit import BanditConfig
from abllm.errors import ConfigError, NotFound, ValidationError
from abllm.stats import MeanStats, ProportionStats

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _bern() -> BanditState:
    return BanditState.start("exp", ["control", "b", "c"], "bernoulli")


def test_rewards_update_the_beta_posteriors() -> None:
    state = _bern().add_rewards({"control": [1, 0, 0, 0], "b": [True, True, False]}, NOW)
    state = state.record("c", 1, NOW)
    posts = state.posteriors()
    assert posts["control"] == BetaPosterior(2, 4)
    assert posts["b"] == BetaPosterior(3, 2)
    assert posts["c"] == BetaPosterior(2, 1)
    assert state.updates == 2
    assert state.updated_at == NOW


def test_add_stats_accepts_stats_summaries_and_adds() -> None:
    state = _bern().add_stats({"control": ProportionStats(n=100.0, successes=10.0)})
    state = state.add_stats({"control": ArmStats(50, 5, 5), "b": ProportionStats(10.0, 4.0)})
    assert state.arms["control"] == ArmStats(150, 15, 15)
    assert state.arms["b"] == ArmStats(10, 4, 4)


def test_with_stats_replaces_with_a_cumulative_snapshot() -> None:
    state = _bern().add_rewards({"c": [1, 1]})
    snap = {"control": ProportionStats(n=200.0, successes=20.0), "b": ProportionStats(180.0, 30.0)}
    state = state.with_stats(snap).with_stats(snap)  # applying twice does not double count
    assert state.arms["control"] == ArmStats(200, 20, 20)
    assert state.arms["c"] == ArmStats()  # absent from the snapshot: no units


def test_gaussian_state_accepts_mean_stats() -> None:
    y = np.array([4.0, 5.0, 3.0, 4.5])
    state = BanditState.start("exp", ["a", "b"], "gaussian", higher_is_better=False)
    state = state.with_stats({"a": MeanStats.from_values(y), "b": MeanStats.from_values(y + 1.0)})
    posts = state.posteriors()
    assert isinstance(posts["a"], StudentTPosterior)
    assert posts["a"].mean < posts["b"].mean
    assert state.probability_best(rng=0)["a"] > 0.5  # lower is better
    assert state.choose(rng=0, exclude=["a"]) == "b"


def test_explicit_nig_prior_is_used() -> None:
    prior = NormalInverseGamma(10.0, 5.0, 2.0, 1.0)
    state = BanditState.start("exp", ["a"], "gaussian", prior=prior)
    post = state.posteriors()["a"]
    assert post.mean == 10.0


def test_allocation_excludes_paused_arms_and_is_seeded() -> None:
    state = _bern().add_rewards({"control": [0] * 50 + [1] * 5, "b": [0] * 40 + [1] * 15})
    w = state.allocation(floor=0.1, rng=3, exclude=["c"])
    assert set(w) == {"control", "b"}
    assert w == state.allocation(floor=0.1, rng=3, exclude=["c"])
    assert w["control"] >= 0.1


@pytest.mark.parametrize(
    ("update", "error", "match"),
    [
        (lambda s: s.record("zzz", 1), NotFound, "unknown variant 'zzz'"),
        (lambda s: s.with_stats({"zzz": ArmStats()}), NotFound, "zzz"),
        (lambda s: s.add_rewards({"b": [0.5]}), ValidationError, r"rewards\.b.*0 or 1"),
        (lambda s: s.add_rewards({"b": [0.5, 1.2071067811865475]}), ValidationError, "0 or 1"),
        (lambda s: s.add_rewards({"b": [math.inf]}), ValidationError, r"rewards\.b.*finite"),
        (lambda s: s.add_stats({"b": ArmStats(1, 2, 2)}), ValidationError, r"arms\.b"),
        (
            lambda s: s.add_stats({"b": ProportionStats(np.array([1.0, 2.0]), 1.0)}),
            ValidationError,
            "single value",
        ),
    ],
)
def test_bad_updates_raise_named_errors(
    update: Callable[[BanditState], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        update(_bern())


def test_construction_is_validated() -> None:
    with pytest.raises(ValidationError, match="kind"):
        BanditState.start("exp", ["a"], "poisson")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="duplicate"):
        BanditState.start("exp", ["a", "a"])
    with pytest.raises(ValidationError, match="at least one arm"):
        BanditState.start("exp", [])
    with pytest.raises(ValidationError, match="NormalInverseGamma"):
        BanditState.start("exp", ["a"], "gaussian", prior=BetaPrior())


@pytest.mark.parametrize(
    "state",
    [
        _bern().add_rewards({"control": [1, 0], "b": [1]}, NOW),
        BanditState.start(
            "exp",
            ["a", "b"],
            "gaussian",
            reward_metric="rating",
            higher_is_better=False,
            prior=NormalInverseGamma(3.0, 2.0, 1.5, 0.25),
        ).add_rewards({"a": [3.5, 4.25], "b": [0.1]}, NOW),
        BanditState.start("exp", ["a"], prior=BetaPrior(2.0, 5.0)),
    ],
)
def test_json_round_trip(state: BanditState) -> None:
    text = state.to_json()
    back = BanditState.from_json(text)
    assert back == state
    assert back.to_json() == text
    assert list(back.arms) == list(state.arms)  # arm order survives (seeded draws depend on it)
    assert back.allocation(rng=1) == state.allocation(rng=1)
    assert json.loads(text)["schema_version"] == 1


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.update(kind="poisson"), "kind"),
        (lambda d: d["arms"]["control"].update(n="ten"), r"arms\.control\.n"),
        (lambda d: d.update(updated_at="yesterday"), "updated_at"),
        (lambda d: d.update(updates=True), "updates"),
        (lambda d: d.update(prior={"alpha": 0, "beta": 1}), "alpha"),
        (lambda d: d.update(arms=[]), "arms"),
    ],
)
def test_from_json_names_the_bad_field(mutate: Callable[[Any], object], match: str) -> None:
    data = json.loads(_bern().to_json())
    mutate(data)
    with pytest.raises(ValidationError, match=match):
        BanditState.from_json(json.dumps(data))


def test_from_json_rejects_garbage() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        BanditState.from_json("{nope")
    with pytest.raises(ValidationError, match="JSON object"):
        BanditState.from_json("[1, 2]")


def test_save_and_load_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bandits" / "exp.json"
    assert load_state(path) is None
    state = _bern().add_rewards({"b": [1, 1, 0]}, NOW)
    save_state(path, state)
    save_state(path, state.record("c", 0, NOW))  # overwrite in place
    loaded = load_state(path)
    assert loaded == state.record("c", 0, NOW)
    assert [p.name for p in path.parent.iterdir()] == ["exp.json"]  # no temp files left
    path.write_text("{broken", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"exp\.json"):
        load_state(path)


def _experiment(metrics: list[Metric], variants: int = 3) -> Experiment:
    llm = LLMConfig(model="sim-small")
    return Experiment(
        id="exp_bandit",
        variants=[Variant(id=f"v{i}", control=i == 0, llm=llm) for i in range(variants)],
        metrics=metrics,
    )


def test_state_for_experiment_uses_the_metric_direction() -> None:
    metrics = [
        Metric(name="thumbs", type="proportion", event="feedback", field="thumbs_up"),
        Metric(name="cost", type="mean", event="llm_call", field="cost_usd", direction="decrease"),
    ]
    exp = _experiment(metrics)
    state = state_for_experiment(exp, BanditConfig(reward_metric="thumbs"))
    assert (state.kind, list(state.arms), state.higher_is_better) == (
        "bernoulli",
        ["v0", "v1", "v2"],
        True,
    )
    cost = state_for_experiment(exp, BanditConfig(reward_metric="cost", kind="gaussian"))
    assert cost.higher_is_better is False
    assert cost.reward_metric == "cost"


def test_bandit_config_problems_name_the_field() -> None:
    metrics = [Metric(name="rating", type="mean", field="rating")]
    exp = _experiment(metrics, variants=3)
    with pytest.raises(ConfigError) as info:
        state_for_experiment(exp, BanditConfig(reward_metric="rating", floor=0.5))
    problems = info.value.problems
    assert any("bandit.reward_metric" in p and "proportion" in p for p in problems)
    assert any("bandit.floor" in p for p in problems)
    missing = BanditConfig(reward_metric="nope").check(metrics, 2)
    assert missing == [
        "bandit.reward_metric: 'nope' is not a metric of this experiment (metrics: rating)"
    ]


def test_bandit_config_defaults_and_strictness() -> None:
    cfg = BanditConfig.model_validate({"reward_metric": "thumbs"})
    assert (cfg.kind, cfg.floor, cfg.update_every_s) == ("bernoulli", 0.05, 300.0)
    with pytest.raises(ValueError, match="extra"):
        BanditConfig.model_validate({"reward_metric": "x", "flor": 0.1})
    with pytest.raises(ValueError, match="floor"):
        BanditConfig.model_validate({"reward_metric": "x", "floor": 1.5})
