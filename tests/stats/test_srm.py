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
