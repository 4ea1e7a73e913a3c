"""Holm and Benjamini–Hochberg over metrics × arms, and multi-arm analysis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from abllm.errors import ValidationError
from abllm.stats import (
    MeanStats,
    ProportionStats,
    TestConfig,
    adjust_comparisons,
    adjust_p_values,
    adjust_table,
    analyze_arms,
    compare,
    compare_many,
)

P = np.array([0.001, 0.04, 0.03, 0.2, 0.012, 0.049, 0.5, 0.0001, 0.04, 0.75])
SM = {"holm": "holm", "bh": "fdr_bh"}


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_matches_statsmodels_multipletests(method: str) -> None:
    ref = multipletests(P, method=SM[method])[1]
    np.testing.assert_allclose(adjust_p_values(P, method), ref, rtol=1e-12)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_families_are_corrected_separately(method: str) -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, (6, 7))
    groups = np.repeat(np.array(["a", "b", "c"]), 14).reshape(6, 7)
    out = adjust_p_values(p, method, groups)  # type: ignore[arg-type]
    for g in "abc":
        mask = groups == g
        np.testing.assert_allclose(
            out[mask], multipletests(p[mask], method=SM[method])[1], rtol=1e-12
        )


def test_missing_p_values_are_left_out() -> None:
    p = np.array([0.01, np.nan, 0.02, 0.03])
    out = adjust_p_values(p, "holm")
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="holm")[1])
    assert np.array_equal(adjust_p_values(p, "none"), p, equal_nan=True)
    with pytest.raises(ValidationError, match="groups"):
        adjust_p_values(p, "bh", [1, 2])
    with pytest.raises(ValidationError, match="correction"):
        adjust_p_values(p, "bonferroni")  # type: ignore[arg-type]


def test_adjust_comparisons_over_metrics_and_arms() -> None:
    rng = np.random.default_rng(4)
    results = []
    for shift in (0.0, 0.05, 0.3):
        a, b = rng.normal(1, 1, 400), rng.normal(1 + shift, 1, 400)
        results.append(compare(MeanStats.from_values(a), MeanStats.from_values(b)))
    adjusted = adjust_comparisons(results, "holm", groups=["seg1", "seg1", "seg2"])
    seg1 = multipletests([r.p_value for r in results[:2]], method="holm")[1]
    assert [r.adjusted_p_value for r in adjusted[:2]] == pytest.approx(seg1, rel=1e-12)
    assert adjusted[2].adjusted_p_value == results[2].p_value
    assert all(r.significant == (r.adjusted_p_value < 0.05) for r in adjusted)


def test_adjust_table_scope_by_segment() -> None:
    ctl = MeanStats(np.full((3, 1), 500.0), np.full((3, 1), 500.0), np.full((3, 1), 1000.0))
    trt = MeanStats(
        np.full((3, 2), 500.0),
        np.array([[540.0, 505], [560, 500], [501, 499]]),
        np.full((3, 2), 1040.0),
    )
    table = adjust_table(
        compare_many(ctl, trt), "holm", groups=np.repeat([[0], [1], [2]], 2, axis=1)
    )
    for s in range(3):
        np.testing.assert_allclose(
            table.adjusted_p_value[s], multipletests(table.p_value[s], method="holm")[1]
        )
    assert table.significant.shape == (3, 2)


def test_analyze_arms_every_treatment_against_control() -> None:
    ctl = ProportionStats(5000, 500)
    arms = {
        "b": ProportionStats(5000, 580),
        "c": ProportionStats(5000, 505),
        "d": ProportionStats(0, 0),
    }
    res = analyze_arms(ctl, arms, TestConfig(), correction="holm")
    assert list(res.comparisons) == ["b", "c", "d"]
    b, c, d = (res.comparisons[k] for k in "bcd")
    ref = multipletests([b.p_value, c.p_value], method="holm")[1]
    assert (b.adjusted_p_value, c.adjusted_p_value) == pytest.approx(tuple(ref), rel=1e-12)
    assert b.significant and not c.significant
    assert d.error == "empty_arm" and not d.significant
    assert res.omnibus is None  # an empty arm has no χ²
    res2 = analyze_arms(ctl, {"b": arms["b"], "c": arms["c"]})
    assert res2.omnibus is not None and res2.omnibus.df == 2


def test_analyze_arms_rejects_mixed_kinds() -> None:
    with pytest.raises(ValidationError, match="same kind"):
        analyze_arms(ProportionStats(10, 1), {"b": MeanStats(10, 1.0, 1.0)})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="at least one"):
        analyze_arms(ProportionStats(10, 1), {})
