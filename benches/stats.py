"""Stats engine speed: 50 metrics × 3 arms × 20 segments from summaries, vs gbstats.

Prints one JSON object. Both engines get the same per-arm sufficient statistics (20 mean, 15
proportion, 10 ratio and 5 CUPED metrics; control + 2 treatments; 20 segments = 2,000
treatment-vs-control comparisons). abllm's timed path is what the analysis layer runs: one
vectorised ``compare_many`` per metric kind (fixed-horizon, sequential and Bayesian results
together), Holm over metrics × arms within each segment and SRM per segment (reported as
``analysis_vectorised``: every figure, in a typed ``ComparisonTable`` per kind), then typed
``Comparison`` objects for all 2,000 comparisons (``total``). gbstats' timed path is only its
``analyze_metric_df`` (frequentist, absolute differences) per metric, on DataFrames prepared
outside the clock. p-values of the kinds defined alike (mean, ratio, CUPED) are compared.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from gbstats.gbstats import analyze_metric_df, get_metric_df
from gbstats.models.settings import AnalysisSettingsForStatsEngine, MetricSettingsForStatsEngine

from abllm.stats import (
    ComparisonTable,
    CupedStats,
    MeanStats,
    ProportionStats,
    RatioStats,
    TestConfig,
    adjust_p_values,
    compare_many,
    srm_p_values,
)

SEGMENTS, ARMS = 20, 3
KINDS = {"mean": 20, "proportion": 15, "ratio": 10, "cuped": 5}
WEIGHTS = [1 / 3, 1 / 3, 1 / 3]
GB_TYPE = {
    "mean": ("mean", "count"),
    "proportion": ("mean", "binomial"),
    "ratio": ("ratio", "count"),
    "cuped": ("mean_ra", "count"),
}


@dataclass
class KindData:
    """Sums with shape (metrics, segments, arms)."""

    cols: dict[str, np.ndarray]


def _make_data(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, KindData]]:
    users = rng.integers(2000, 6000, (SEGMENTS, ARMS)).astype(float)
    out: dict[str, KindData] = {}
    for kind, m in KINDS.items():
        n = np.broadcast_to(users, (m, SEGMENTS, ARMS)).copy()
        mu = rng.uniform(1.0, 10.0, (m, 1, 1)) * rng.normal(1.0, 0.02, (m, SEGMENTS, ARMS))
        sd = mu * rng.uniform(0.3, 1.2, (m, 1, 1))
        if kind == "proportion":
            p = np.clip(
                rng.uniform(0.02, 0.4, (m, 1, 1)) * rng.normal(1, 0.05, n.shape), 0.01, 0.99
            )
            out[kind] = KindData({"n": n, "s": np.round(n * p)})
            continue
        s = n * mu
        ss = (n - 1) * sd**2 + n * mu**2
        cols = {"n": n, "s": s, "ss": ss}
        if kind in ("ratio", "cuped"):
            mu2 = rng.uniform(2.0, 6.0, (m, 1, 1)) * np.ones(n.shape)
            sd2 = mu2 * 0.5
            rho = 0.6
            cols["s2"] = n * mu2
            cols["ss2"] = (n - 1) * sd2**2 + n * mu2**2
            cols["sp"] = (n - 1) * rho * sd * sd2 + n * mu * mu2
        out[kind] = KindData(cols)
    return users, out


def _stats(kind: str, c: dict[str, np.ndarray], sl: slice) -> object:
    g = {k: v[..., sl] for k, v in c.items()}
    if kind == "mean":
        return MeanStats(g["n"], g["s"], g["ss"])
    if kind == "proportion":
        return ProportionStats(g["n"], g["s"])
    if kind == "ratio":
        return RatioStats(g["n"], g["s"], g["s2"], g["ss"], g["ss2"], g["sp"])
    return CupedStats(g["n"], g["s"], g["ss"], g["s2"], g["ss2"], g["sp"])


def run_abllm(users: np.ndarray, data: dict[str, KindData], rows: bool) -> list[ComparisonTable]:
    """The analysis layer's path; returns the corrected tables (and builds typed rows)."""
    cfg = TestConfig()
    tables = [
        compare_many(_stats(k, d.cols, slice(0, 1)), _stats(k, d.cols, slice(1, ARMS)), cfg)  # type: ignore[type-var]
        for k, d in data.items()
    ]
    # Holm over all metrics × arms within each segment (segment is axis 1 of every table).
    p = np.concatenate([t.decision_p_value.reshape(-1) for t in tables])
    seg = np.concatenate(
        [np.broadcast_to(np.arange(SEGMENTS)[None, :, None], t.shape).reshape(-1) for t in tables]
    )
    adjusted = adjust_p_values(p, "holm", seg)
    out, start = [], 0
    for t in tables:
        out.append(t.with_adjusted(adjusted[start : start + len(t)].reshape(t.shape)))
        start += len(t)
    srm_p_values(users, WEIGHTS)
    if rows:
        for t in out:
            t.rows()
    return out


def _gb_frames(
    data: dict[str, KindData],
) -> list[tuple[pd.DataFrame, MetricSettingsForStatsEngine]]:
    frames = []
    var_ids = [str(i) for i in range(ARMS)]
    for kind, d in data.items():
        stat_type, main_type = GB_TYPE[kind]
        for m in range(KINDS[kind]):
            records = []
            for s in range(SEGMENTS):
                for a in range(ARMS):
                    c = {k: float(v[m, s, a]) for k, v in d.cols.items()}
                    row = {
                        "dimension": f"seg{s}",
                        "variation": var_ids[a],
                        "users": c["n"],
                        "count": c["n"],
                    }
                    if kind == "proportion":
                        row |= {"main_sum": c["s"], "main_sum_squares": c["s"]}
                    else:
                        row |= {"main_sum": c["s"], "main_sum_squares": c["ss"]}
                    if kind == "ratio":
                        row |= {
                            "denominator_sum": c["s2"],
                            "denominator_sum_squares": c["ss2"],
                            "main_denominator_sum_product": c["sp"],
                        }
                    if kind == "cuped":
                        row |= {
                            "covariate_sum": c["s2"],
                            "covariate_sum_squares": c["ss2"],
                            "main_covariate_sum_product": c["sp"],
                        }
                    records.append(row)
            metric = MetricSettingsForStatsEngine(
                id=f"{kind}{m}",
                name=f"{kind}{m}",
                statistic_type=stat_type,  # type: ignore[arg-type]
                main_metric_type=main_type,  # type: ignore[arg-type]
                denominator_metric_type="count" if kind == "ratio" else None,
                covariate_metric_type="count" if kind == "cuped" else None,
            )
            frames.append(
                (
                    get_metric_df(
                        pd.DataFrame(records), {v: i for i, v in enumerate(var_ids)}, var_ids
                    ),
                    metric,
                )
            )
    return frames


def _analysis() -> AnalysisSettingsForStatsEngine:
    return AnalysisSettingsForStatsEngine(
        var_names=["control", "b", "c"],
        var_ids=["0", "1", "2"],
        weights=WEIGHTS,
        stats_engine="frequentist",
        difference_type="absolute",
    )


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def main() -> None:
    rng = np.random.default_rng(2024)
    users, data = _make_data(rng)
    for d in data.values():  # the CUPED/ratio sums above share one users column
        d.cols["n"] = d.cols["n"].copy()
    run_abllm(users, data, rows=True)  # warm-up
    vec_ms = _median_ms(lambda: run_abllm(users, data, rows=False), 50)
    total_ms = _median_ms(lambda: run_abllm(users, data, rows=True), 50)

    frames = _gb_frames(data)
    analysis = _analysis()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copies = [[(df.copy(), m) for df, m in frames] for _ in range(4)]
        results: list[pd.DataFrame] = []

        def gb_run(batch: list[tuple[pd.DataFrame, MetricSettingsForStatsEngine]]) -> None:
            results.clear()
            results.extend(analyze_metric_df(df, m, analysis) for df, m in batch)

        gb_run(copies[0])  # warm-up
        gb_samples = []
        for batch in copies[1:]:
            t = time.perf_counter()
            gb_run(batch)
            gb_samples.append((time.perf_counter() - t) * 1e3)
    gb_ms = statistics.median(gb_samples)

    # Agreement on the kinds both define the same way (Welch / delta method / CUPED, absolute).
    tables = dict(zip(data, run_abllm(users, data, rows=False), strict=True))
    worst, i = 0.0, 0
    for kind in data:
        for m in range(KINDS[kind]):
            res = results[i]
            i += 1
            if kind == "proportion":
                continue
            for arm in (1, 2):
                gb_p = res[f"v{arm}_p_value"].to_numpy(dtype=float)
                worst = max(
                    worst, float(np.max(np.abs(gb_p - tables[kind].p_value[m, :, arm - 1])))
                )
    rows = SEGMENTS * sum(KINDS.values())
    print(
        json.dumps(
            {
                "inputs": {
                    "metrics": sum(KINDS.values()),
                    "kinds": KINDS,
                    "arms": ARMS,
                    "segments": SEGMENTS,
                    "comparisons": rows * (ARMS - 1),
                },
                "abllm_ms": {
                    "analysis_vectorised": round(vec_ms, 3),
                    "typed_comparison_objects": round(total_ms - vec_ms, 3),
                    "total": round(total_ms, 3),
                },
                "gbstats_ms": {
                    "analyze_metric_df": round(gb_ms, 1),
                    "per_row": round(gb_ms / rows, 3),
                },
                "speedup_vs_gbstats": {
                    "analysis_vectorised": round(gb_ms / vec_ms, 1),
                    "total": round(gb_ms / total_ms, 1),
                },
                "targets": {
                    "analysis_under_20ms": vec_ms < 20.0,
                    "total_under_20ms": total_ms < 20.0,
                    "total_at_least_50x": gb_ms / total_ms >= 50,
                },
                "max_abs_p_value_diff_vs_gbstats_mean_ratio_cuped": worst,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
