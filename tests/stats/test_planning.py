"""Power, sample size and MDE pinned to statsmodels' NormalIndPower."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.power import NormalIndPower

from abllm.errors import ValidationError
from abllm.stats import days_needed, minimum_detectable_effect, plan, power_at, sample_size

SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("mde", "sd", "n", "ratio"), [(0.2, 1.0, 400, 1.0), (0.05, 0.3, 900, 2.0)])
def test_power_matches_normal_ind_power(
    mde: float, sd: float, n: int, ratio: float, alternative: str
) -> None:
    effect = mde / sd if alternative != "less" else -mde / sd
    ref = NormalIndPower().power(
        effect, nobs1=n, alpha=0.05, ratio=ratio, alternative=SM_ALT[alternative]
    )
    got = power_at(n, mde, sd, alpha=0.05, alternative=alternative, ratio=ratio)  # type: ignore[arg-type]
    assert got == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_sample_size_hits_the_target_power(alternative: str) -> None:
    n = sample_size(0.2, 1.0, alpha=0.05, power=0.8, alternative=alternative)  # type: ignore[arg-type]
    ref = NormalIndPower().power(0.2, nobs1=n, alpha=0.05, alternative=SM_ALT[alternative])
    assert ref == pytest.approx(0.8, rel=1e-9)
    solved = NormalIndPower().solve_power(
        0.2, alpha=0.05, power=0.8, alternative=SM_ALT[alternative]
    )
    assert n == pytest.approx(solved, rel=1e-6)


def test_mde_inverts_sample_size() -> None:
    n = sample_size(0.2, 1.0)
    assert minimum_detectable_effect(n, 1.0) == pytest.approx(0.2, rel=1e-9)
    assert power_at(400, minimum_detectable_effect(400, 1.0), 1.0) == pytest.approx(0.8, rel=1e-9)
    d = minimum_detectable_effect(5000, 0.0, baseline_rate=0.1)
    p1 = 0.1 + d
    assert power_at(
        5000, d, math.sqrt(0.09), sd_treatment=math.sqrt(p1 * (1 - p1))
    ) == pytest.approx(0.8, rel=1e-9)


def test_issue_example_plan() -> None:
    """abllm power --baseline-mean 3.8 --sd 1.0 --mde 0.2 --alpha 0.05 --power 0.8."""
    p = plan(baseline_mean=3.8, sd=1.0, mde=0.2, alpha=0.05, power=0.8, daily_units=100)
    assert p.units_per_arm == 393  # 392.44 by NormalIndPower
    assert p.total_units == 786 and p.days == 8
    assert p.mde_relative == pytest.approx(0.2 / 3.8)
    rel = plan(baseline_mean=3.8, sd=1.0, mde=0.05, relative=True)
    assert rel.mde == pytest.approx(0.19)
    by_n = plan(baseline_mean=3.8, sd=1.0, units_per_arm=393)
    assert by_n.mde == pytest.approx(0.2, rel=2e-3)


def test_rate_plan_uses_both_rates() -> None:
    p = plan(baseline_rate=0.10, mde=0.10, relative=True, arms=3)
    n = sample_size(0.01, math.sqrt(0.09), sd_treatment=math.sqrt(0.11 * 0.89))
    assert p.units_per_arm == math.ceil(n)
    assert p.total_units == 3 * p.units_per_arm


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mde": 0.2}, "baseline_mean and sd"),
        ({"baseline_mean": 1.0, "sd": 0.0, "mde": 0.2}, "sd must be > 0"),
        ({"baseline_mean": 1.0, "sd": 1.0}, "exactly one of mde"),
        ({"baseline_rate": 1.2, "mde": 0.1}, "baseline rate"),
        ({"baseline_rate": 0.9, "mde": 0.2}, "below 1"),
        ({"baseline_mean": 1.0, "sd": 1.0, "mde": 0.2, "alpha": 0.7}, "alpha"),
        ({"baseline_mean": 1.0, "sd": 1.0, "mde": 0.2, "arms": 1}, "arms"),
    ],
)
def test_plan_errors_name_the_field(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        plan(**kwargs)  # type: ignore[arg-type]


def test_days_needed() -> None:
    assert days_needed(1000, 100) == 10
    assert days_needed(1001, 100) == 11
    assert days_needed(1000, 100, traffic_fraction=0.5) == 20
    with pytest.raises(ValidationError, match="daily units"):
        days_needed(10, 0)
