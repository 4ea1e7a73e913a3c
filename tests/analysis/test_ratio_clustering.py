"""Many requests per unit: the ratio metric's CI is the delta-method one, not a per-event t-test.

Latencies of one user are correlated (a unit-level effect), so the per-event t-test treats
30 correlated calls as 30 independent observations and its interval is far too narrow. The
analysis treats latency per call as Σlatency/Σcalls over units and uses the delta method
(Deng, Knoblich & Lu 2018, eq. 3), recomputed by hand here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats as sps

from abllm.analysis import analyze
from abllm.config import loads_experiments
from abllm.events import open_store

from .simdata import Arm, Sim, load, make_events

CONFIG = """
experiments:
  - id: exp
    variants:
      - {id: control, control: true, llm: {provider: sim, model: m}}
      - {id: treatment, llm: {provider: sim, model: m}}
    metrics:
      - {name: latency_ms, type: ratio, event: llm_call, field: latency_ms, role: primary,
         direction: decrease}
"""


def test_ratio_ci_is_delta_method_not_naive_per_event() -> None:
    sim = Sim(
        units=500,
        arms={"control": Arm(calls=30.0, error=0.0), "treatment": Arm(calls=30.0, error=0.0)},
        seed=11,
        switch_share=0.0,
        extra_metric=False,
    )
    table = make_events(sim)
    exp = loads_experiments(CONFIG).get("exp")
    store = load(open_store("duckdb:///:memory:"), table)
    try:
        res = analyze(exp, store, now=datetime(2024, 3, 10, tzinfo=UTC))
    finally:
        store.close()
    cmp = res.metrics["latency_ms"].comparisons["treatment"]

    df = table.to_pandas()
    first = df[df["type"] == "exposure"].groupby("unit_id")["variant_id"].first()
    calls = df[df["type"] == "llm_call"].copy()
    calls["arm"] = calls["unit_id"].map(first)
    assert calls.groupby("unit_id").size().mean() > 20  # many requests per unit

    # Naive: every call an independent observation.
    naive = sps.ttest_ind(
        calls.loc[calls["arm"] == "treatment", "latency_ms"],
        calls.loc[calls["arm"] == "control", "latency_ms"],
        equal_var=False,
    )
    n_lo, n_hi = naive.confidence_interval(0.95)

    # Delta method over units, by hand.
    per_unit = calls.groupby("unit_id").agg(num=("latency_ms", "sum"), den=("latency_ms", "count"))
    per_unit["arm"] = first
    est, var = {}, {}
    for arm, g in per_unit.groupby("arm"):
        x, y = g["num"].to_numpy(), g["den"].to_numpy()
        mx, my = x.mean(), y.mean()
        cxy = np.cov(x, y, ddof=1)[0, 1]
        var[arm] = (
            x.var(ddof=1) / my**2 - 2 * mx * cxy / my**3 + mx**2 * y.var(ddof=1) / my**4
        ) / len(x)
        est[arm] = x.sum() / y.sum()
    se = np.sqrt(var["treatment"] + var["control"])
    n_t, n_c = (per_unit["arm"] == "treatment").sum(), (per_unit["arm"] == "control").sum()
    dof = (var["treatment"] + var["control"]) ** 2 / (
        var["treatment"] ** 2 / (n_t - 1) + var["control"] ** 2 / (n_c - 1)
    )
    q = sps.t.ppf(0.975, dof)
    diff = est["treatment"] - est["control"]

    assert cmp.diff == pytest.approx(diff, rel=1e-9)
    assert cmp.diff_ci[0] == pytest.approx(diff - q * se, rel=1e-9)
    assert cmp.diff_ci[1] == pytest.approx(diff + q * se, rel=1e-9)
    # The per-event interval is much narrower: it ignores the clustering of calls in units.
    ours, theirs = cmp.diff_ci[1] - cmp.diff_ci[0], n_hi - n_lo
    assert ours > 1.8 * theirs
    assert cmp.p_value != pytest.approx(naive.pvalue, rel=0.05)
