"""Sample ratio mismatch against scipy.stats.chisquare and gbstats.check_srm."""

from __future__ import annotations

import numpy as np
import pytest
from gbstats.utils import check_srm
from scipy import stats

from abllm.errors import ValidationError
from abllm.stats import srm, srm_p_values


@pytest.mark.parametrize(
    ("counts", "weights"),
    [([5000, 5100], [0.5, 0.5]), ([4800, 5200], [1, 1]), ([800, 100, 95], [0.8, 0.1, 0.1])],
)
def test_matches_scipy_and_gbstats(counts: list[int], weights: list[float]) -> None:
    res = srm(counts, weights)
    share = np.asarray(weights, dtype=float) / np.sum(weights)
    ref = stats.chisquare(counts, np.sum(counts) * share)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(check_srm(counts, weights), rel=1e-9)
    assert res.flagged == (res.p_value < 0.001)


def test_flags_a_broken_split() -> None:
    assert srm([4800, 5200], [0.5, 0.5]).flagged
    assert not srm([5000, 5100], [0.5, 0.5]).flagged


def test_zero_weight_arms() -> None:
    assert srm([500, 480, 0], [0.5, 0.5, 0.0]).p_value == pytest.approx(
        stats.chisquare([500, 480]).pvalue
    )
    stray = srm([500, 480, 3], [0.5, 0.5, 0.0])
    assert stray.p_value == 0.0 and stray.flagged
    assert srm([0, 0], [1, 1]).p_value == 1.0


def test_vectorised_over_segments() -> None:
    counts = np.array([[5000, 5100], [4800, 5200], [0, 0]])
    p = srm_p_values(counts, [1, 1])
    assert p[0] == pytest.approx(srm([5000, 5100], [1, 1]).p_value)
    assert p[2] == 1.0


def test_invalid_input() -> None:
    with pytest.raises(ValidationError, match="weights"):
        srm([1, 2], [1])
    with pytest.raises(ValidationError, match="weights"):
        srm([1, 2], [0, 0])
    with pytest.raises(ValidationError, match="counts"):
        srm([1, -2], [1, 1])


def test_sequential_srm_at_2000_looks_keeps_false_alarms_below_threshold() -> None:
    """A correct 50/50 split checked at 2,000 controller ticks: ≤ 0.1 % flagged (χ²: ~3 %)."""
    from abllm.stats.srm import sequential_srm, sequential_srm_p_values

    rng = np.random.default_rng(2026)
    experiments, looks, per_look = 2000, 2000, 10
    a = rng.binomial(per_look, 0.5, size=(experiments, looks)).cumsum(axis=1)
    n = np.broadcast_to(per_look * np.arange(1, looks + 1), a.shape)
    obs = np.stack([a, n - a], axis=-1)  # (experiments, looks, arms)
    p = sequential_srm_p_values(obs, obs * 0 + n[..., None] * 0.5, n[..., None] * 0.25)
    assert (p.min(axis=(1, 2)) < 0.001).mean() <= 0.001
    chi = stats.chi2.sf((a - n * 0.5) ** 2 / (n * 0.25), 1)
    assert (chi.min(axis=1) < 0.001).mean() > 0.01  # why the controller needs the sequential test
    one = sequential_srm(obs[0, -1], [n[0, -1] / 2] * 2, [n[0, -1] / 4] * 2)
    assert one.p_values == pytest.approx(tuple(p[0, -1]))


def test_sequential_srm_flags_the_arm_concerned() -> None:
    from abllm.stats.srm import sequential_srm

    # Arm 2 lost a fifth of its 20,000 expected units.
    res = sequential_srm([40_100, 19_900, 16_000], [40_000, 20_000, 20_000],
                         [40_000 * 0.5, 20_000 * 0.75, 20_000 * 0.75])  # fmt: skip
    assert res.flagged == (2,) or 2 in res.flagged
    assert 1 not in res.flagged
