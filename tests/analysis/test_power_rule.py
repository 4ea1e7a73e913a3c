"""The decision rule delivers the power it plans for: SHIP at effect = MDE, quiet in A/A.

Each simulated experiment is judged once, at the sample the rule asks for (its sequential test
would also get the earlier looks, which only adds power), through the real ``metric_results``
and ``recommend`` with the default rule (sequential, Holm, alpha 0.05, power 0.8).
"""

from __future__ import annotations

import numpy as np
import pytest

from abllm.analysis.collect import MetricData
from abllm.analysis.compute import metric_results, required_units, tuning_units
from abllm.analysis.decide import DecisionInput, recommend
from abllm.analysis.result import Decision, SrmResult
from abllm.analysis.specs import MetricSpec, Value
from abllm.config import DecisionRule
from abllm.stats import MeanStats

SPEC = MetricSpec("rating", "mean", Value("rating", "column"), "feedback", role="primary")
RULE = DecisionRule(mde=0.05, min_units_per_arm=0)
MEAN, SD = 3.8, 1.0


def _summary(rng: np.random.Generator, n: int, mean: float, sims: int) -> list[MeanStats]:
    """``sims`` per-arm summaries of n normal units, from their exact sampling distributions."""
    means = rng.normal(mean, SD / np.sqrt(n), sims)
    m2 = SD**2 * rng.chisquare(n - 1, sims)
    return [MeanStats(n, mu * n, mu * mu * n + s, m2=s) for mu, s in zip(means, m2, strict=True)]


def _decisions(arms: dict[str, float], sims: int, seed: int) -> list[Decision]:
    ids = list(arms)
    exact = MeanStats(10**6, MEAN * 10**6, 10**6 * MEAN**2 + (10**6 - 1) * SD**2)
    n = required_units(RULE, exact, len(ids))
    assert n is not None
    tuning = tuning_units(RULE, n, len(ids))
    rng = np.random.default_rng(seed)
    per_arm = {v: _summary(rng, n, mu, sims) for v, mu in arms.items()}
    srm = SrmResult(1.0, False, {}, {})
    out = []
    for i in range(sims):
        data = MetricData(SPEC, {v: per_arm[v][i] for v in ids})
        results = metric_results([data], ids[0], ids[1:], RULE, "rating", tuning)
        rec = recommend(DecisionInput(RULE, ids[0], ids[1:], srm, [], results["rating"],
                                      results, required_units=n))  # fmt: skip
        out.append(rec.decision)
    return out


@pytest.mark.parametrize("arms", [2, 3])
def test_a_true_effect_equal_to_the_mde_ships_at_the_planned_sample(arms: int) -> None:
    effect = {"control": MEAN, "t": MEAN * (1 + RULE.mde)}  # type: ignore[operator]
    if arms == 3:
        effect["null"] = MEAN
    got = _decisions(effect, sims=600, seed=arms)
    ship = sum(d is Decision.SHIP for d in got) / len(got)
    assert ship >= 0.78, ship


def test_aa_rarely_decides_at_the_planned_sample() -> None:
    got = _decisions({"control": MEAN, "t": MEAN}, sims=1000, seed=9)
    wrong = sum(d in (Decision.SHIP, Decision.KEEP_CONTROL) for d in got) / len(got)
    assert wrong <= 0.05, wrong
