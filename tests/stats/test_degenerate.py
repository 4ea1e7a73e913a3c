"""Degenerate input returns error codes (never raises) so dashboards still render."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from abllm.errors import ValidationError
from abllm.stats import (
    CupedStats,
    ErrorCode,
    Hypothesis,
    MeanStats,
    ProportionStats,
    RatioStats,
    TestConfig,
    compare,
    compare_many,
)


@pytest.mark.parametrize(
    ("control", "treatment", "code"),
    [
        (MeanStats(0, 0.0, 0.0), MeanStats(10, 10.0, 12.0), ErrorCode.EMPTY_ARM),
        (MeanStats(1, 2.0, 4.0), MeanStats(10, 10.0, 12.0), ErrorCode.TOO_FEW_UNITS),
        (MeanStats(10, 20.0, 40.0), MeanStats(10, 30.0, 90.0), ErrorCode.ZERO_VARIANCE),
        (ProportionStats(100, 0), ProportionStats(90, 0), ErrorCode.ZERO_VARIANCE),
        (ProportionStats(100, 100), ProportionStats(90, 90), ErrorCode.ZERO_VARIANCE),
        (ProportionStats(0, 0), ProportionStats(90, 9), ErrorCode.EMPTY_ARM),
        (RatioStats(5, 10.0, 0.0, 30.0, 0.0, 0.0), RatioStats(5, 10.0, 5.0, 30.0, 6.0, 11.0),
         ErrorCode.ZERO_DENOMINATOR),
        (CupedStats(0, 0.0, 0.0, 0.0, 0.0, 0.0), CupedStats(3, 3.0, 5.0, 1.0, 1.0, 1.0),
         ErrorCode.EMPTY_ARM),
    ],
)  # fmt: skip
def test_error_codes(control: object, treatment: object, code: ErrorCode) -> None:
    c = compare(control, treatment)  # type: ignore[type-var]
    assert c.error is code
    assert not c.significant
    assert math.isnan(c.p_value) and math.isnan(c.seq_p_value) and math.isnan(c.chance_to_win)
    d = c.as_dict()
    json.dumps(d, allow_nan=False)  # JSON-safe
    assert d["error"] == code.value


def test_zero_variance_keeps_the_point_estimate() -> None:
    c = compare(MeanStats(10, 20.0, 40.0), MeanStats(10, 30.0, 90.0))
    assert c.diff == 1.0 and c.control.mean == 2.0 and c.treatment.n == 10


def test_relative_hypothesis_needs_a_positive_baseline() -> None:
    cfg = TestConfig(hypothesis=Hypothesis("less", 0.1, relative=True))
    c = compare(MeanStats(10, -10.0, 30.0), MeanStats(10, 10.0, 30.0), cfg)
    assert c.error is ErrorCode.NONPOSITIVE_BASELINE


def test_one_bad_segment_does_not_spoil_the_others() -> None:
    ctl = MeanStats(
        np.array([100.0, 0.0, 50.0]), np.array([380.0, 0.0, 190.0]), np.array([1600.0, 0.0, 800.0])
    )
    trt = MeanStats(
        np.array([100.0, 80.0, 1.0]),
        np.array([400.0, 300.0, 4.0]),
        np.array([1700.0, 1200.0, 16.0]),
    )
    t = compare_many(ctl, trt)
    assert t.errors == [None, ErrorCode.EMPTY_ARM, ErrorCode.TOO_FEW_UNITS]
    assert np.isfinite(t.p_value[0]) and np.isnan(t.p_value[1:]).all()
    assert t.significant.tolist() == [bool(t.p_value[0] < 0.05), False, False]


def test_programming_errors_raise_validation_errors() -> None:
    with pytest.raises(ValidationError, match="same kind"):
        compare(MeanStats(10, 1.0, 1.0), ProportionStats(10, 1))  # type: ignore[type-var]
    with pytest.raises(ValidationError, match="compare_many"):
        compare(MeanStats(np.array([10.0, 20]), 1.0, 1.0), MeanStats(10, 1.0, 1.0))
    with pytest.raises(ValidationError, match="alpha"):
        TestConfig(alpha=0.0)
    with pytest.raises(ValidationError, match="alternative"):
        Hypothesis("bigger")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="margin"):
        Hypothesis.non_inferiority(-0.1, higher_is_better=True)
    with pytest.raises(ValidationError, match="stack"):
        MeanStats.stack([])
