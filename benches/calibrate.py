"""Long calibration runs of the statistics (``make calibrate``); results go in docs/analysis.md.

The seeded, fast versions of these checks run in ``tests/stats``; these use more replications.

- ``quantiles``: coverage of the p95/p99 per-arm CI and of the A/A difference CI at 200, 1,000
  and 5,000 units per arm (lognormal latency with a unit effect, ~12 calls per unit), using
  ``QuantileStats.from_events`` (the reference of the SQL path).

Usage: python benches/calibrate.py [quantiles] [--reps 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from abllm.stats import QuantileStats, compare

SIGMA_UNIT, SIGMA_CALL, MU = 0.5, 0.7, 6.0


def _arm(rng: np.random.Generator, units: int) -> tuple[np.ndarray, np.ndarray]:
    calls = rng.poisson(11, units) + 1
    unit = np.repeat(np.arange(units), calls)
    effect = rng.normal(0, SIGMA_UNIT, units)[unit]
    return np.exp(MU + effect + rng.normal(0, SIGMA_CALL, unit.size)), unit


def quantiles(reps: int, seed: int = 1) -> dict[str, dict[str, float]]:
    """Coverage of the nominal 95 % intervals, per level and size."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    sigma = math.hypot(SIGMA_UNIT, SIGMA_CALL)
    out: dict[str, dict[str, float]] = {}
    for level in (0.95, 0.99):
        truth = math.exp(MU + sigma * float(stats.norm.ppf(level)))
        for units in (200, 1000, 5000):
            arm_hits = diff_hits = 0
            for _ in range(reps):
                a = QuantileStats.from_events(*_arm(rng, units), level)
                b = QuantileStats.from_events(*_arm(rng, units), level)
                c = compare(a, b)
                arm_hits += c.control.ci[0] <= truth <= c.control.ci[1]
                diff_hits += c.diff_ci[0] <= 0.0 <= c.diff_ci[1]
            out[f"p{round(level * 100)}@{units}"] = {
                "arm_ci": arm_hits / reps,
                "aa_diff_ci": diff_hits / reps,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", default=["quantiles"], help="quantiles")
    parser.add_argument("--reps", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    result: dict[str, object] = {"reps": args.reps}
    if "quantiles" in args.what:
        result["quantiles"] = quantiles(args.reps)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
