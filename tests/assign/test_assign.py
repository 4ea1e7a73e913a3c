"""Assignment properties: sticky, uniform, independent, monotone under ramps, explainable."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from abllm.assign import Reason, RuntimeState, assign, assign_many
from abllm.config import Experiment


def make(**overrides: object) -> Experiment:
    base: dict[str, object] = {
        "id": "exp_a",
        "variants": [
            {"id": "control", "control": True, "weight": 50, "llm": {"model": "sim-small"}},
            {"id": "treatment", "weight": 50, "llm": {"model": "sim-small"}},
        ],
    }
    base.update(overrides)
    return Experiment.model_validate(base)


def three_arm(**overrides: object) -> Experiment:
    arms = [
        {"id": "control", "control": True, "weight": 80, "llm": {"model": "m"}},
        {"id": "b", "weight": 10, "llm": {"model": "m"}},
        {"id": "c", "weight": 10, "llm": {"model": "m"}},
    ]
    return make(variants=arms, **overrides)


UNITS = [f"user-{i}" for i in range(100_000)]


def test_sticky_across_processes() -> None:
    exp = make()
    here = [assign(exp, u).variant_id for u in UNITS[:200]]
    code = (
        "import json,sys\n"
        "from abllm.assign import assign\n"
        "from abllm.config import Experiment\n"
        "exp = Experiment.model_validate(json.loads(sys.argv[1]))\n"
        "print(json.dumps([assign(exp, f'user-{i}').variant_id for i in range(200)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, exp.model_dump_json()],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert json.loads(out.stdout) == here


def _chi2_p(counts: np.ndarray, weights: list[float]) -> float:
    expected = np.array(weights) / sum(weights) * counts.sum()
    return float(stats.chisquare(counts, expected).pvalue)


def test_uniform_50_50() -> None:
    batch = assign_many(make(), UNITS)
    counts = np.bincount(batch.variant, minlength=2)
    assert _chi2_p(counts, [50, 50]) > 0.001


def test_uniform_80_10_10() -> None:
    batch = assign_many(three_arm(), UNITS)
    counts = np.bincount(batch.variant, minlength=3)
    assert _chi2_p(counts, [80, 10, 10]) > 0.001


def test_buckets_uniform() -> None:
    buckets = assign_many(make(), UNITS).bucket
    assert stats.kstest(buckets, "uniform").pvalue > 0.001


def test_two_experiments_independent() -> None:
    a = assign_many(make(id="exp_a"), UNITS).variant
    b = assign_many(make(id="exp_b"), UNITS).variant
    table = np.zeros((2, 2))
    np.add.at(table, (a, b), 1)
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_batch_identical_to_scalar() -> None:
    exp = three_arm(
        holdout=7, traffic=60, layer={"name": "L", "range": [0.1, 0.9]}, forced={"user-3": "c"}
    )
    units = [*UNITS[:20_000], "é-unit", "😀", ""]
    state = RuntimeState(paused_variants=frozenset({"b"}))
    batch = list(assign_many(exp, units, state=state))
    assert batch == [assign(exp, u, state=state) for u in units]
    reasons = {a.reason for a in batch}
    assert {
        Reason.HOLDOUT,
        Reason.OTHER_LAYER,
        Reason.OUTSIDE_TRAFFIC,
        Reason.ASSIGNED,
        Reason.VARIANT_PAUSED,
        Reason.FORCED,
    } <= reasons


@settings(max_examples=25, deadline=None)
@given(
    ramp=st.lists(st.floats(min_value=0, max_value=100), min_size=2, max_size=6).map(sorted),
    seed=st.text(min_size=1, max_size=12),
)
def test_ramp_monotone(ramp: list[float], seed: str) -> None:
    """Raising traffic only adds units: nobody assigned earlier changes arm or leaves."""
    units = UNITS[:3000]
    before: np.ndarray | None = None
    for traffic in ramp:
        now = assign_many(three_arm(traffic=traffic, seed=seed), units).variant
        if before is not None:
            kept = before >= 0
            assert (now[kept] == before[kept]).all()
        before = now


def test_ramp_5_25_50_100_keeps_units() -> None:
    prior = None
    for traffic in (5, 25, 50, 100):
        now = assign_many(make(traffic=traffic), UNITS).variant
        share = (now >= 0).mean()
        assert abs(share - traffic / 100) < 0.01
        if prior is not None:
            assert (now[prior >= 0] == prior[prior >= 0]).all()
        prior = now


def test_reasons() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert assign(make(status="draft"), "u").reason is Reason.NOT_RUNNING
    assert assign(make(start="2026-07-01T00:00:00Z"), "u", now=now).reason is Reason.NOT_RUNNING
    assert assign(make(end="2026-05-01T00:00:00Z"), "u", now=now).reason is Reason.NOT_RUNNING
    targeted = make(targeting=[{"attribute": "plan", "op": "eq", "value": "pro"}])
    assert assign(targeted, "u", {"plan": "free"}).reason is Reason.NOT_TARGETED
    assert assign(targeted, "u", {"plan": "pro"}).in_experiment
    forced = make(forced={"qa": "treatment"}, status="draft")
    got = assign(forced, "qa")
    assert (got.reason, got.variant_id) == (Reason.FORCED, "treatment")
    killed = assign(forced, "qa", state=RuntimeState(killed=True))
    assert killed.reason is Reason.KILLED
    assert (killed.variant_id, killed.served_variant_id) == (None, "control")
    assert assign(make(), "u", state=RuntimeState(paused=True)).reason is Reason.PAUSED
    assert assign(make(traffic=0), "u").reason is Reason.OUTSIDE_TRAFFIC


def test_targeting_ops() -> None:
    rules = [
        {"attribute": "country", "op": "in", "value": ["US", "CA"]},
        {"attribute": "tier", "op": "not_in", "value": ["banned"]},
        {"attribute": "age", "op": "gt", "value": 17},
        {"attribute": "age", "op": "lt", "value": 65},
        {"attribute": "email", "op": "regex", "value": r"@acme\.com$"},
    ]
    exp = make(targeting=rules)
    ok = {"country": "US", "age": "30", "email": "a@acme.com"}
    assert assign(exp, "u", ok).in_experiment
    for bad in (
        {"country": "FR"},
        {"tier": "banned"},
        {"age": 12},
        {"age": 70},
        {"email": "a@other.com"},
    ):
        assert assign(exp, "u", ok | bad).reason is Reason.NOT_TARGETED


def test_layers_are_mutually_exclusive() -> None:
    left = make(id="left", layer={"name": "L", "range": [0, 0.5]})
    right = make(id="right", layer={"name": "L", "range": [0.5, 1]})
    a = assign_many(left, UNITS).variant >= 0
    b = assign_many(right, UNITS).variant >= 0
    assert not (a & b).any()
    assert abs(a.mean() - 0.5) < 0.01 and abs(b.mean() - 0.5) < 0.01


def test_holdout_shared_across_layer() -> None:
    one = make(id="one", holdout=10, layer={"name": "L"})
    two = make(id="two", holdout=10, layer={"name": "L"})
    h1 = np.array([a.reason is Reason.HOLDOUT for a in assign_many(one, UNITS)])
    h2 = np.array([a.reason is Reason.HOLDOUT for a in assign_many(two, UNITS)])
    assert (h1 == h2).all()
    assert abs(h2.mean() - 0.10) < 0.005


def test_runtime_weights_and_winner() -> None:
    exp = make()
    shifted = RuntimeState(weights={"control": 0, "treatment": 1})
    assert {a.variant_id for a in assign_many(exp, UNITS[:1000], state=shifted)} == {"treatment"}
    winner = RuntimeState(winner="treatment", winner_percent=75)
    got = assign_many(exp, UNITS, state=winner)
    share = np.mean([a.variant_id == "treatment" for a in got])
    assert abs(share - 0.75) < 0.01
