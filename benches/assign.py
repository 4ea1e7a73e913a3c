"""Assignment speed: abllm single and batch paths vs the growthbook SDK, same experiments.

Prints one JSON object. Each abllm answer is checked against the SDK's on the same units, so the
comparison is between equal results.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from abllm.assign import assign, assign_many
from abllm.config import Experiment, load_experiments

ROOT = Path(__file__).resolve().parents[1]
N_SINGLE = 200_000
N_BATCH = 1_000_000


def _experiments() -> list[Experiment]:
    exps = [
        load_experiments(ROOT / "examples" / "summarize.yaml").experiments[0],
        load_experiments(ROOT / "examples" / "support_bot.yaml").experiments[0],
    ]
    # Without holdout, the same experiment GrowthBook can express, so answers can be compared;
    # the summarization example with its 5 % holdout (a second hash) is timed too, abllm only.
    return [*(e.model_copy(update={"holdout": 0.0}) for e in exps), exps[0]]


def _gb_experiment(exp: Experiment) -> GBExperiment:
    return GBExperiment(
        key=exp.id,
        variations=[v.id for v in exp.variants],
        weights=exp.weights,
        coverage=exp.traffic / 100,
        seed=exp.hash_seed,
        hashVersion=2,
    )


def _median_us(fn, units: list[str]) -> float:  # type: ignore[no-untyped-def]
    samples = []
    clock = time.perf_counter_ns
    for u in units:
        t = clock()
        fn(u)
        samples.append(clock() - t)
    return statistics.median(samples) / 1000


def bench_experiment(exp: Experiment) -> dict[str, object]:
    units = [f"user-{i}" for i in range(N_SINGLE)]
    gb = GrowthBook(attributes={"id": ""})
    gb_exp = _gb_experiment(exp)

    def gb_run(u: str) -> str:
        gb.set_attributes({"id": u})
        return str(gb.run(gb_exp).value)

    abllm_us = _median_us(lambda u: assign(exp, u), units)
    batch_units = [f"user-{i}" for i in range(N_BATCH)]
    t = time.perf_counter()
    assign_many(exp, batch_units)
    batch_s = time.perf_counter() - t
    row: dict[str, object] = {
        "experiment": exp.id,
        "arms": len(exp.variants),
        "holdout_percent": exp.holdout,
        "abllm_single_us_median": round(abllm_us, 3),
        "abllm_batch_units_per_s": round(N_BATCH / batch_s),
    }
    if exp.holdout:
        return row
    mismatches = sum(assign(exp, u).variant_id != gb_run(u) for u in units[:20_000])
    gb_us = _median_us(gb_run, units[:50_000])
    return row | {
        "growthbook_sdk_us_median": round(gb_us, 3),
        "speedup_vs_growthbook": round(gb_us / abllm_us, 2),
        "mismatches_vs_growthbook_of_20000": mismatches,
    }


def main() -> None:
    results = [bench_experiment(e) for e in _experiments()]
    targets = {"single_us_median_max": 4.0, "speedup_min": 2.0, "batch_units_per_s_min": 3_000_000}
    print(json.dumps({"bench": "assign", "results": results, "targets": targets}, indent=2))


if __name__ == "__main__":
    main()
