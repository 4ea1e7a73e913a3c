"""The inline SVG chart of cumulative daily effects: scale, bands, gaps and fallbacks."""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from abllm.analysis import ArmResult, Comparison, DailyPoint
from abllm.dashboard.chart import build_series, daily_chart, daily_table, nice_ticks

NAN = float("nan")


def _cmp(rel: float, lo: float, hi: float, *, seq: tuple[float, float] = (NAN, NAN)) -> Comparison:
    return Comparison(
        diff=rel * 2,
        diff_ci=(lo * 2, hi * 2),
        p_value=0.01,
        p_value_sequential=0.02,
        rel_lift=rel,
        rel_ci=(lo, hi),
        chance_to_win=0.9,
        p_value_adjusted=0.01,
        significant=True,
        seq_rel_ci=seq,
    )


def _points(cmps: list[dict[str, Comparison]]) -> list[DailyPoint]:
    d0 = date(2024, 3, 1)
    arm = ArmResult(n=100, mean=1.0, ci=(0.9, 1.1))
    return [
        DailyPoint(
            day=d0 + timedelta(days=i),
            until=datetime.combine(d0 + timedelta(days=i), datetime.min.time(), UTC),
            arms={"control": arm, **{v: arm for v in c}},
            comparisons=c,
        )
        for i, c in enumerate(cmps)
    ]


@pytest.mark.parametrize(
    ("lo", "hi"), [(-0.28, 0.33), (0.0, 1.0), (-3e-4, 2e-4), (12.0, 97.0), (-1500.0, 0.0)]
)
def test_nice_ticks_cover_the_range_with_round_steps(lo: float, hi: float) -> None:
    ticks = nice_ticks(lo, hi, count=6)
    assert 3 <= len(ticks) <= 13
    assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in (1, 2, 5)
    assert ticks[0] - lo < step and hi - ticks[-1] < step


def test_chart_draws_band_line_and_dots_per_treatment() -> None:
    points = _points(
        [
            {"a": _cmp(0.10, -0.05, 0.25), "b": _cmp(-0.02, -0.2, 0.1)},
            {"a": _cmp(0.08, 0.01, 0.15), "b": _cmp(-0.03, -0.1, 0.05)},
            {"a": _cmp(0.07, 0.03, 0.11), "b": _cmp(NAN, NAN, NAN)},  # a gap
        ]
    )
    svg = daily_chart(points, ["a", "b"], metric_label="rating", sequential=False)
    assert svg.count('class="band"') == 2  # b's gap on day 3 is skipped, not drawn as 0
    assert svg.count('class="whisker"') == 0
    assert svg.count('class="line"') == 2
    assert svg.count('class="dot"') == 5
    assert "nan" not in svg.lower()
    assert "+10.00% (-5.00% to +25.00%)" in svg
    assert "Mar 01" in svg and "Mar 03" in svg
    assert "with CI" in svg
    # Every coordinate lies inside the viewBox.
    for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", svg):
        assert 0 <= float(x) <= 760 and 0 <= float(y) <= 280


def test_chart_uses_the_sequential_band_when_the_rule_is_sequential() -> None:
    points = _points([{"a": _cmp(0.1, 0.05, 0.15, seq=(-0.2, 0.4))}] * 2)
    seq = daily_chart(points, ["a"], metric_label="m", sequential=True)
    fixed = daily_chart(points, ["a"], metric_label="m", sequential=False)
    assert "-20.00% to +40.00%" in seq and "always-valid CI" in seq
    assert "+5.00% to +15.00%" in fixed
    table = daily_table(points, ["a"], sequential=True)
    assert table.count("<tr><td>") == 2 and "always-valid CI" in table


def test_single_point_gets_a_whisker_and_no_relative_lift_falls_back_to_differences() -> None:
    one = _points([{"a": _cmp(0.1, 0.0, 0.2)}])
    assert 'class="whisker"' in daily_chart(one, ["a"], metric_label="m", sequential=False)
    zero_base = Comparison(
        diff=0.5, diff_ci=(0.1, 0.9), p_value=0.04, p_value_sequential=0.2, rel_lift=NAN,
        rel_ci=(NAN, NAN), chance_to_win=0.97, p_value_adjusted=0.04, significant=True,
    )  # fmt: skip
    points = _points([{"a": zero_base}, {"a": zero_base}])
    series, relative = build_series(points, ["a"], sequential=False)
    assert not relative and series[0].points[0][1:] == (0.5, 0.1, 0.9)
    svg = daily_chart(points, ["a"], metric_label="m", sequential=False)
    assert "difference" in svg and "+0.5 (+0.1 to +0.9)" in svg


def test_nothing_to_draw_says_so() -> None:
    assert "no daily estimates yet" in daily_chart([], ["a"], metric_label="m", sequential=True)
    empty = _points([{"a": _cmp(NAN, NAN, NAN)}])
    assert "no daily estimates yet" in daily_chart(empty, ["a"], metric_label="m", sequential=True)
