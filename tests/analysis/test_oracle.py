"""Results equal scipy/statsmodels run on per-unit data built independently here with pandas.

The per-unit frame follows the documented rules, written again from scratch: a unit belongs to
the variant of its first exposure, only its events at or after that exposure count, errored
calls (and feedback on their traces) are left out of quality metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from abllm.analysis import ExperimentResult, analyze
from abllm.config import Experiment
from abllm.events import open_store

from .simdata import THREE_ARMS, load, make_events

NOW = datetime(2024, 3, 10, tzinfo=UTC)
TOL = {"rel": 1e-9, "abs": 1e-12}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_events(THREE_ARMS)


@pytest.fixture(scope="module")
def result(table: pa.Table, experiment: Experiment) -> ExperimentResult:
    store = load(open_store("duckdb:///:memory:"), table)
    try:
        return analyze(experiment, store, now=NOW)
    finally:
        store.close()


@pytest.fixture(scope="module")
def events(table: pa.Table) -> pd.DataFrame:
    """Events after each unit's first exposure, with that exposure's variant as ``arm``."""
    df = table.to_pandas()
    exp = df[df["type"] == "exposure"].sort_values(["ts", "variant_id"])
    first = exp.groupby("unit_id").first()[["variant_id", "ts"]]
    first.columns = ["arm", "t0"]
    df = df.join(first, on="unit_id")
    return df[df["ts"] >= df["t0"]]


def _ok_feedback(events: pd.DataFrame) -> pd.DataFrame:
    bad = set(events.loc[(events["type"] == "llm_call") & (events["error"] == 1), "trace_id"])
    fb = events[events["type"] == "feedback"]
    keep = np.array([t not in bad for t in fb["trace_id"]], dtype=bool)
    return fb[keep]


def _ok_calls(events: pd.DataFrame) -> pd.DataFrame:
    calls = events[events["type"] == "llm_call"]
    return calls[calls["error"].fillna(0) == 0]


def _by_arm(per_unit: pd.Series[Any], arms: pd.Series[Any]) -> dict[str, np.ndarray]:
    frame = pd.DataFrame({"y": per_unit, "arm": arms}).dropna()
    return {a: g["y"].to_numpy(float) for a, g in frame.groupby("arm")}


def _unit_arm(events: pd.DataFrame) -> pd.Series[Any]:
    return events.groupby("unit_id")["arm"].first()


def test_units_and_srm_match_scipy_chisquare(
    result: ExperimentResult, events: pd.DataFrame
) -> None:
    counts = _unit_arm(events).value_counts()
    for v in ("control", "treatment", "b"):
        assert result.variants[v].units == counts[v]
    observed = [counts["control"], counts["treatment"], counts["b"]]
    p = sps.chisquare(observed, [sum(observed) / 3] * 3).pvalue
    assert result.srm.chi2_p_value == pytest.approx(p, **TOL)
    assert not result.srm.flag and result.srm.unrecorded_units == sum(observed)


def test_mean_metric_matches_welch_ttest(result: ExperimentResult, events: pd.DataFrame) -> None:
    fb = _ok_feedback(events)
    per_unit = fb.dropna(subset=["rating"]).groupby("unit_id")["rating"].mean()
    arms = _by_arm(per_unit, _unit_arm(events))
    metric = result.metrics["rating"]
    for v in ("treatment", "b"):
        ref = sps.ttest_ind(arms[v], arms["control"], equal_var=False)
        lo, hi = ref.confidence_interval(0.95)
        cmp = metric.comparisons[v]
        assert cmp.p_value == pytest.approx(ref.pvalue, **TOL)
        assert cmp.diff == pytest.approx(arms[v].mean() - arms["control"].mean(), **TOL)
        assert cmp.diff_ci == (pytest.approx(lo, **TOL), pytest.approx(hi, **TOL))
        assert metric.arms[v].n == len(arms[v])
        assert metric.arms[v].mean == pytest.approx(arms[v].mean(), **TOL)


@pytest.mark.parametrize(
    ("name", "agg"), [("last_rating", "last"), ("max_rating", "max"), ("n_feedback", "count")]
)
def test_aggregations_match_pandas(
    result: ExperimentResult, events: pd.DataFrame, name: str, agg: str
) -> None:
    fb = _ok_feedback(events).dropna(subset=["rating"]).sort_values(["ts", "rating"])
    grouped = fb.groupby("unit_id")["rating"]
    per_unit = {"last": grouped.last(), "max": grouped.max(), "count": grouped.count()}[agg]
    arms = _by_arm(per_unit, _unit_arm(events))
    ref = sps.ttest_ind(arms["treatment"], arms["control"], equal_var=False)
    assert result.metrics[name].comparisons["treatment"].p_value == pytest.approx(ref.pvalue, **TOL)
    assert result.metrics[name].arms["b"].mean == pytest.approx(arms["b"].mean(), **TOL)


def test_extra_json_metric_with_bools_matches_pandas(
    result: ExperimentResult, events: pd.DataFrame
) -> None:
    calls = _ok_calls(events).dropna(subset=["extra"]).copy()
    calls["judge"] = calls["extra"].map(lambda s: float(pd.io.json.loads(s)["judge"]))
    arms = _by_arm(calls.groupby("unit_id")["judge"].mean(), _unit_arm(events))
    ref = sps.ttest_ind(arms["b"], arms["control"], equal_var=False)
    assert result.metrics["judge"].comparisons["b"].p_value == pytest.approx(ref.pvalue, **TOL)


def test_proportion_matches_proportions_ztest(
    result: ExperimentResult, events: pd.DataFrame
) -> None:
    fb = _ok_feedback(events).dropna(subset=["thumbs_up"])
    arms = _by_arm(fb.groupby("unit_id")["thumbs_up"].max(), _unit_arm(events))
    for v in ("treatment", "b"):
        _, p = proportions_ztest(
            [arms[v].sum(), arms["control"].sum()], [len(arms[v]), len(arms["control"])]
        )
        assert result.metrics["thumbs_up"].comparisons[v].p_value == pytest.approx(p, **TOL)


def test_fill_missing_counts_units_without_data_as_failures(
    result: ExperimentResult, events: pd.DataFrame
) -> None:
    out = events[events["type"] == "outcome"].dropna(subset=["copied"])
    units = _unit_arm(events)
    per_unit = out.groupby("unit_id")["copied"].max().reindex(units.index).fillna(0.0)
    arms = _by_arm(per_unit, units)
    arm = result.metrics["copied_any"].arms["control"]
    assert arm.n == len(arms["control"]) == result.variants["control"].units
    assert arm.mean == pytest.approx(arms["control"].mean(), **TOL)


def _delta(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio and its delta-method variance (Deng et al. 2018, eq. 3), written out here."""
    n = len(num)
    mx, my = num.mean(), den.mean()
    vx, vy = num.var(ddof=1), den.var(ddof=1)
    cxy = np.cov(num, den, ddof=1)[0, 1]
    var = (vx / my**2 - 2 * mx * cxy / my**3 + mx**2 * vy / my**4) / n
    return num.sum() / den.sum(), var


def test_ratio_matches_delta_method(result: ExperimentResult, events: pd.DataFrame) -> None:
    calls = _ok_calls(events).dropna(subset=["latency_ms"])
    g = calls.groupby("unit_id")["latency_ms"]
    units = _unit_arm(events)
    num, den = _by_arm(g.sum(), units), _by_arm(g.count(), units)
    r_c, v_c = _delta(num["control"], den["control"])
    r_t, v_t = _delta(num["b"], den["b"])
    se = np.sqrt(v_c + v_t)
    dof = (v_c + v_t) ** 2 / (v_c**2 / (len(num["control"]) - 1) + v_t**2 / (len(num["b"]) - 1))
    p = 2 * sps.t.sf(abs(r_t - r_c) / se, dof)
    cmp = result.metrics["latency_ms"].comparisons["b"]
    assert result.metrics["latency_ms"].arms["b"].mean == pytest.approx(r_t, **TOL)
    assert cmp.diff == pytest.approx(r_t - r_c, **TOL)
    assert cmp.p_value == pytest.approx(p, **TOL)
    q = sps.t.ppf(0.975, dof)
    assert cmp.diff_ci[0] == pytest.approx(r_t - r_c - q * se, **TOL)


def test_error_rate_counts_errored_calls(result: ExperimentResult, events: pd.DataFrame) -> None:
    calls = events[events["type"] == "llm_call"]
    units = _unit_arm(events)
    g = calls.groupby("unit_id")["error"]
    num, den = _by_arm(g.sum(), units), _by_arm(g.count(), units)
    r_t, _ = _delta(num["treatment"], den["treatment"])
    assert result.metrics["error_rate"].arms["treatment"].mean == pytest.approx(r_t, **TOL)


def test_quantile_is_linear_interpolation_over_events(
    result: ExperimentResult, events: pd.DataFrame
) -> None:
    calls = _ok_calls(events).dropna(subset=["latency_ms"])
    for v in ("control", "treatment", "b"):
        values = calls.loc[calls["arm"] == v, "latency_ms"].to_numpy()
        arm = result.metrics["p95_latency_ms"].arms[v]
        assert arm.mean == pytest.approx(np.quantile(values, 0.95), **TOL)
        assert arm.events == len(values)
        assert arm.ci[0] < arm.mean < arm.ci[1]


def test_holm_over_configured_metrics_matches_statsmodels(result: ExperimentResult) -> None:
    family = [m for m in result.metrics.values() if not m.builtin and m.name != result.primary]
    cmps = [c for m in family for c in m.comparisons.values() if np.isfinite(c.p_value)]
    _, adjusted, _, _ = multipletests([c.p_value for c in cmps], method="holm")
    for c, ref in zip(cmps, adjusted, strict=True):
        assert c.p_value_adjusted == pytest.approx(ref, **TOL)
    primary = list(result.metrics[result.primary or ""].comparisons.values())
    _, adjusted, _, _ = multipletests([c.p_value for c in primary], method="holm")
    assert [c.p_value_adjusted for c in primary] == pytest.approx(list(adjusted), **TOL)
