"""The eval statistics against scipy, statsmodels and brute force."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from abllm.eval.compare import compare_rows, paired, pass_hat_k, summarize, unpaired


def test_paired_t_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(3, 1, 40)
    b = a + rng.normal(0.3, 0.5, 40)
    got = paired(list(a), list(b), binary=False)
    res = stats.ttest_rel(b, a)
    assert got.p_value == pytest.approx(res.pvalue)
    ci = res.confidence_interval(0.95)
    assert got.ci == pytest.approx((ci.low, ci.high))
    assert got.diff == pytest.approx(float(np.mean(b - a)))
    assert got.test == "paired_t" and got.n == 40


def test_mcnemar_matches_statsmodels_exact() -> None:
    rng = random.Random(5)
    a = [float(rng.random() < 0.5) for _ in range(60)]
    b = [float(rng.random() < 0.7) if x == 0 else float(rng.random() < 0.9) for x in a]
    table = [[0, 0], [0, 0]]
    for x, y in zip(a, b, strict=True):
        table[int(x)][int(y)] += 1
    got = paired(a, b, binary=True)
    assert got.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert got.diff == pytest.approx(sum(b) / 60 - sum(a) / 60)
    # Wald interval of a paired difference: var = ((b+c) - (b-c)^2/n) / n^2 (Agresti §11.1)
    gains, losses = table[0][1], table[1][0]
    se = math.sqrt(gains + losses - (gains - losses) ** 2 / 60) / 60
    assert got.ci == pytest.approx((got.diff - 1.959964 * se, got.diff + 1.959964 * se), rel=1e-5)


def test_no_discordant_pairs_is_p_one() -> None:
    got = paired([1.0, 0.0, 1.0], [1.0, 0.0, 1.0], binary=True)
    assert got.p_value == 1.0 and got.diff == 0.0


def test_summaries_match_wilson_and_t() -> None:
    values = [1.0] * 7 + [0.0] * 5
    got = summarize(values, binary=True)
    lo, hi = proportion_confint(7, 12, alpha=0.05, method="wilson")
    assert got.ci == pytest.approx((lo, hi))
    data = [2.0, 4.0, 4.5, 7.0]
    got = summarize(data, binary=False)
    expect = stats.t.interval(0.95, 3, loc=np.mean(data), scale=stats.sem(data))
    assert got.ci == pytest.approx(expect) and got.n == 4


@pytest.mark.parametrize(
    ("a", "b", "p", "ci"),
    [
        ([], [], None, None),
        ([1.0], [2.0], None, None),
        ([1.0, 2.0], [1.0, 2.0], 1.0, (0.0, 0.0)),
        ([1.0, 2.0], [2.0, 3.0], 0.0, (1.0, 1.0)),
    ],
)
def test_degenerate_paired(
    a: list[float], b: list[float], p: float | None, ci: tuple[float, float] | None
) -> None:
    got = paired(a, b, binary=False)
    assert got.p_value == p and got.ci == ci


def test_unpaired_welch_and_row_matching() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 3.5, 5.0, 6.0, 7.0]
    got = unpaired(a, b)
    assert got.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    shared = compare_rows(
        {"x": 1.0, "y": 2.0, "z": 4.0}, {"y": 3.0, "z": 4.0, "w": 0.0}, False, allow_unpaired=True
    )
    assert shared.test == "paired_t" and shared.n == 2
    apart = compare_rows({"x": 1.0, "y": 2.0}, {"v": 3.0, "w": 4.5}, False, allow_unpaired=True)
    assert apart.test == "welch_t"


def test_pass_hat_k_brute_force() -> None:
    trials = 4
    successes = [0, 1, 2, 3, 4, 2]
    for k in range(1, trials + 1):
        brute = []
        for c in successes:
            outcomes = [1] * c + [0] * (trials - c)
            subsets = list(itertools.combinations(range(trials), k))
            brute.append(sum(all(outcomes[i] for i in s) for s in subsets) / len(subsets))
        assert pass_hat_k(successes, trials, k) == pytest.approx(sum(brute) / len(brute))
    assert pass_hat_k(successes, trials, 5) is None
