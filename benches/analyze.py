"""Seconds for a full experiment result from 10M events, in the store, next to pandas + scipy.

Data: 1M units in 3 arms (first exposure each), ~6 LLM calls per unit and feedback on half of
them: ~10M events, generated with DuckDB SQL (no Python loop). The experiment has 6 metrics:
rating (mean), thumbs_up (proportion), latency_ms, cost_per_request and error_rate (ratios,
delta method) and p95_latency_ms (quantile, unit-clustered CI).

Measured, in the same run:

- ``embedded``: ``abllm.analysis.analyze`` on the DuckDB store file (configured metrics only,
  and the full result with the built-ins that have data);
- ``postgres``: the same on PostgreSQL (the same rows loaded with COPY);
- ``pandas_scipy``: the same result computed with pandas (per-unit groupby after first-exposure
  attribution and the error exclusions) and scipy/statsmodels (Welch t, proportions z-test,
  delta method, quantiles with the clustered CI) from a DataFrame already in memory (loading it
  is reported apart, and its string columns are categorical: the peer's best case).

Targets: embedded ≤ 2 s, ≥ 5x faster than pandas. Prints one JSON document.

Usage: python benches/analyze.py [--units 1000000] [--repeat 3] [--no-postgres] [--no-pandas]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.proportion import proportions_ztest

from abllm.analysis import analyze
from abllm.config import loads_experiments
from abllm.events import COLUMNS, open_store

PG_URL = os.environ.get("ABLLM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2024, 4, 1, tzinfo=UTC)
ARMS = ("control", "treatment_a", "treatment_b")
CONFIG = """
experiments:
  - id: bench
    variants:
      - {id: control, control: true, llm: {provider: sim, model: m}}
      - {id: treatment_a, llm: {provider: sim, model: m}}
      - {id: treatment_b, llm: {provider: sim, model: m}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
      - {name: thumbs_up, type: proportion, event: feedback, field: thumbs_up}
      - {name: latency_ms, type: ratio, event: llm_call, field: latency_ms, direction: decrease}
      - {name: p95_latency_ms, type: quantile, quantile: 0.95, event: llm_call,
         field: latency_ms}
      - {name: cost_per_request, type: ratio, event: llm_call, field: cost_usd,
         exclude_errors: false, direction: decrease}
      - {name: error_rate, type: ratio, event: llm_call, field: error, direction: decrease}
    decision: {mde: 0.01, min_units_per_arm: 1000}
"""

# One SELECT producing every event, in COLUMNS order (DuckDB SQL, seeded).
GENERATE = """
WITH u AS (
  SELECT i, 'u' || i AS unit_id,
         ['control', 'treatment_a', 'treatment_b'][1 + (hash(i) % 3)::INT] AS v,
         sqrt(-2 * ln(random() + 1e-12)) * cos(2 * pi() * random()) AS eff,
         TIMESTAMPTZ '2024-03-01 00:00:00+00'
           + to_microseconds((random() * 86400e6 * 20)::BIGINT) AS t0,
         1 + (random() * 10)::INT AS calls
  FROM range({units}) r(i)
),
c AS (
  SELECT u.*, k, random() AS r_err, random() AS r_fb, random() AS r_lat, random() AS r_rat
  FROM u, range(u.calls) t(k)
),
rows AS (
  SELECT unit_id, v, t0 AS ts, 'exposure' AS type, NULL::VARCHAR AS trace_id,
         NULL::DOUBLE AS latency_ms, NULL::DOUBLE AS cost_usd, NULL::DOUBLE AS error,
         NULL::DOUBLE AS rating, NULL::DOUBLE AS thumbs_up
  FROM u
  UNION ALL
  SELECT unit_id, v, t0 + to_seconds(1 + k * 30), 'llm_call', unit_id || '-' || k,
         CASE WHEN r_err < 0.02 THEN 30000.0
              ELSE (CASE v WHEN 'treatment_b' THEN 360.0 ELSE 400.0 END)
                   * exp(0.3 * eff
                         + 0.35 * sqrt(-2 * ln(r_lat + 1e-12)) * cos(2 * pi() * r_fb)) END,
         CASE WHEN r_err < 0.02 THEN NULL ELSE 0.002 + 0.0005 * r_lat END,
         CASE WHEN r_err < 0.02 THEN 1.0 ELSE 0.0 END,
         NULL, NULL
  FROM c
  UNION ALL
  SELECT unit_id, v, t0 + to_seconds(10 + k * 30), 'feedback', unit_id || '-' || k,
         NULL, NULL, NULL,
         least(5.0, greatest(1.0, round(3.8 + CASE v WHEN 'treatment_a' THEN 0.05 ELSE 0 END
                                        + 0.8 * eff + (r_rat - 0.5) * 2))),
         CASE WHEN r_rat < 0.6 THEN 1.0 ELSE 0.0 END
  FROM c WHERE r_fb < 0.5
)
SELECT CAST('00000000-0000-4000-8000-' || lpad(printf('%x', row_number() OVER ()), 12, '0') AS UUID)
         AS event_id,
       ts, type, 'bench' AS experiment_id, 1 AS experiment_version, v AS variant_id, unit_id,
       trace_id, latency_ms, NULL::DOUBLE AS ttft_ms, NULL::DOUBLE AS input_tokens,
       NULL::DOUBLE AS output_tokens, cost_usd, error, rating, thumbs_up,
       NULL::DOUBLE AS task_completed, NULL::DOUBLE AS edit_distance, NULL::DOUBLE AS copied,
       NULL::DOUBLE AS retried, NULL::DOUBLE AS abandoned, NULL::DOUBLE AS fallback,
       NULL::DOUBLE AS schema_valid, NULL::VARCHAR AS extra, NULL::VARCHAR AS attrs
FROM rows
"""


def build_embedded(path: Path, units: int) -> tuple[float, int]:
    """Create the store file (schema from the store itself), then fill it with SQL."""
    open_store(f"duckdb:///{path}").close()
    started = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute("SELECT setseed(0.42)")
    con.execute(f"INSERT INTO abllm_events {GENERATE.format(units=units)}")
    n = int(con.execute("SELECT count(*) FROM abllm_events").fetchone()[0])
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - started, n


def build_postgres(source: Path, schema: str) -> float:
    """COPY the same rows into PostgreSQL (CSV exported by DuckDB)."""
    import psycopg

    started = time.perf_counter()
    open_store(f"{PG_URL}?schema={schema}").close()  # schema, table and indexes
    csv = source.with_suffix(".csv")
    con = duckdb.connect(str(source), read_only=True)
    con.execute(f"COPY abllm_events TO '{csv}' (HEADER false)")
    con.close()
    with psycopg.connect(PG_URL, autocommit=True) as pg:
        pg.execute(f'SET search_path TO "{schema}"')
        with (
            pg.cursor().copy(
                f"COPY abllm_events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv)"
            ) as cp,
            csv.open("rb") as f,
        ):
            while chunk := f.read(1 << 20):
                cp.write(chunk)
        pg.execute("ANALYZE abllm_events")
    csv.unlink()
    return time.perf_counter() - started


def time_analysis(url: str, repeat: int, builtins: bool) -> dict[str, Any]:
    exp = loads_experiments(CONFIG).get("bench")
    store = open_store(url)
    try:
        times, cpu, result = [], [], None
        for _ in range(repeat):
            started, cpu0 = time.perf_counter(), time.process_time()
            result = analyze(exp, store, now=NOW, builtins=builtins)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu0)
    finally:
        store.close()
    assert result is not None
    return {
        "seconds": min(times),
        "seconds_median": statistics.median(times),
        "cpu_seconds_in_process": min(cpu),
        "metrics": len(result.metrics),
        "units": {v: r.units for v, r in result.variants.items()},
        "decision": result.recommendation.decision.value,
        "rating_p_value": {v: c.p_value for v, c in result.metrics["rating"].comparisons.items()},
    }


def load_pandas(path: Path) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    con = duckdb.connect(str(path), read_only=True)
    df = con.execute(
        "SELECT ts, type, variant_id, unit_id, trace_id, latency_ms, cost_usd, error, rating, "
        "thumbs_up FROM abllm_events WHERE experiment_id = 'bench'"
    ).df()
    con.close()
    for col in ("type", "variant_id", "unit_id"):
        df[col] = df[col].astype("category")
    return df, time.perf_counter() - started


def _delta(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    n = len(x)
    mx, my = x.mean(), y.mean()
    cxy = np.cov(x, y, ddof=1)[0, 1]
    var = (x.var(ddof=1) / my**2 - 2 * mx * cxy / my**3 + mx**2 * y.var(ddof=1) / my**4) / n
    return x.sum() / y.sum(), var


def pandas_scipy(df: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """The same six metrics, attribution and exclusions, with pandas and scipy; returns the
    seconds and the rating p-values (to check that both computed the same thing)."""
    started = time.perf_counter()
    p_rating: dict[str, float] = {}
    exp = df[df["type"] == "exposure"].sort_values(["ts", "variant_id"])
    first = exp.drop_duplicates("unit_id")[["unit_id", "variant_id", "ts"]]
    first.columns = ["unit_id", "arm", "t0"]
    ev = df.merge(first, on="unit_id")
    ev = ev[ev["ts"] >= ev["t0"]]
    calls = ev[ev["type"] == "llm_call"]
    bad = calls.loc[calls["error"] == 1, "trace_id"]
    fb = ev[(ev["type"] == "feedback") & ~ev["trace_id"].isin(bad)]
    ok = calls[calls["error"] == 0]
    arm_of = first.set_index("unit_id")["arm"]

    def by_arm(s: pd.Series) -> dict[str, np.ndarray]:
        frame = pd.DataFrame({"y": s, "arm": arm_of.reindex(s.index)})
        return {str(a): g["y"].to_numpy(float) for a, g in frame.groupby("arm", observed=True)}

    rating = by_arm(fb.dropna(subset=["rating"]).groupby("unit_id", observed=True)["rating"].mean())
    thumbs = by_arm(
        fb.dropna(subset=["thumbs_up"]).groupby("unit_id", observed=True)["thumbs_up"].max()
    )
    ratios = {}
    for name, frame, col in (("latency", ok, "latency_ms"), ("cost", calls, "cost_usd"),
                             ("error", calls, "error")):  # fmt: skip
        g = frame.dropna(subset=[col]).groupby("unit_id", observed=True)[col]
        ratios[name] = (by_arm(g.sum()), by_arm(g.count()))
    for t in ARMS[1:]:
        p_rating[t] = float(sps.ttest_ind(rating[t], rating["control"], equal_var=False).pvalue)
        proportions_ztest(
            [thumbs[t].sum(), thumbs["control"].sum()], [len(thumbs[t]), len(thumbs["control"])]
        )
        for num, den in ratios.values():
            r_t, v_t = _delta(num[t], den[t])
            r_c, v_c = _delta(num["control"], den["control"])
            sps.t.sf(abs(r_t - r_c) / np.sqrt(v_t + v_c), len(num[t]) + len(num["control"]) - 2)
    # p95 with the unit-clustered CI: quantiles at p and its bounds, then indicator sums.
    lat = ok.dropna(subset=["latency_ms"])
    p95 = {}
    for arm, g in lat.groupby("arm", observed=True):
        values = g["latency_ms"].to_numpy()
        n = len(values)
        half = 1.96 * np.sqrt(0.95 * 0.05 / n)
        q, lo, hi = np.quantile(values, [0.95, 0.95 - half, 0.95 + half])
        below = (g["latency_ms"] <= q).groupby(g["unit_id"], observed=True).sum()
        m = g.groupby("unit_id", observed=True)["latency_ms"].count()
        _, var_f = _delta(below.to_numpy(float), m.to_numpy(float))
        se = (hi - lo) / (2 * 1.96) * np.sqrt(var_f / (0.95 * 0.05 / n))
        p95[str(arm)] = (q, se)
    for t in ARMS[1:]:
        diff = p95[t][0] - p95["control"][0]
        sps.norm.sf(abs(diff) / np.hypot(p95[t][1], p95["control"][1]))
    sps.chisquare(first["arm"].value_counts().to_numpy())
    return time.perf_counter() - started, p_rating


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-pandas", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="abllm-bench-analyze-"))
    path = tmp / "events.duckdb"
    report: dict[str, Any] = {
        "bench": "analyze",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
        },
        "units": args.units,
        "arms": len(ARMS),
        "metrics": 6,
        "load_average_at_start": os.getloadavg(),
    }
    try:
        gen_s, n = build_embedded(path, args.units)
        report["events"] = n
        report["generate_seconds"] = round(gen_s, 2)
        url = f"duckdb:///{path}"
        report["embedded"] = time_analysis(url, args.repeat, builtins=False)
        report["embedded_with_builtins"] = time_analysis(url, args.repeat, builtins=True)
        if not args.no_pandas:
            df, load_s = load_pandas(path)
            seconds, p_rating = pandas_scipy(df)
            ours = report["embedded"]["rating_p_value"]
            report["pandas_scipy"] = {
                "seconds": seconds,
                "load_seconds": load_s,
                "pandas": pd.__version__,
                "rating_p_value": p_rating,
                "same_rating_p_values": all(
                    abs(p_rating[v] - ours[v]) <= 1e-9 * max(1.0, abs(ours[v])) for v in p_rating
                ),
            }
            del df
            report["speedup_vs_pandas"] = (
                report["pandas_scipy"]["seconds"] / report["embedded"]["seconds"]
            )
        if not args.no_postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                report["postgres_load_seconds"] = build_postgres(path, schema)
                report["postgres"] = time_analysis(
                    f"{PG_URL}?schema={schema}", max(1, args.repeat - 1), builtins=False
                )
            finally:
                import psycopg

                with psycopg.connect(PG_URL, autocommit=True) as pg:
                    pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        report["targets"] = {
            "embedded_seconds_max": 2.0,
            "embedded_ok": report["embedded"]["seconds"] <= 2.0,
            "speedup_min": 5.0,
            "speedup_ok": report.get("speedup_vs_pandas", 0.0) >= 5.0,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
