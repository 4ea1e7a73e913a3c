"""Seconds for one rollout-controller check of an experiment at 1M and 10M stored events.

One check is what ``abllm serve`` does every ``rollout.check_interval_s`` per experiment: take
the lease, read the state, analyse the live events (guardrails with sequential tests, the
recommendation), decide and store. Data: the same generator as ``benches/analyze.py`` (~10
events per unit: an exposure, 1-10 LLM calls, feedback on half of them) on an embedded DuckDB
file; the experiment has two guardrails (error rate, p95 latency) and a gated rollout plan.

The check today re-analyses every stored event of the experiment (the analysis' per-unit SQL
runs in the store), so its time grows with all events, not with the events since the last
check: per-unit aggregates kept incrementally are not implemented (see docs/rollout.md).

Usage: python benches/rollout_tick.py [--units 100000 1000000] [--repeat 3]
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from abllm.config import loads_experiments
from abllm.events import open_store
from abllm.rollout import AnalysisResults, RolloutController
from abllm.state import open_state
from abllm.state.lease import leases_for

CONFIG = """
experiments:
  - id: bench
    variants:
      - {id: control, control: true, llm: {provider: sim, model: m}}
      - {id: treatment_a, llm: {provider: sim, model: m}}
      - {id: treatment_b, llm: {provider: sim, model: m}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
      - {name: p95_latency_ms, type: quantile, quantile: 0.95, event: llm_call,
         field: latency_ms}
    decision: {mde: 0.01, min_units_per_arm: 1000}
    guardrails:
      - {metric: error_rate, max_ratio: 2, min_units: 100, action: pause}
      - {metric: p95_latency_ms, max_ratio: 1.5, min_units: 100, action: rollback}
    rollout:
      check_interval_s: 60
      stages:
        - {name: canary, weights: {control: 80, treatment_a: 10, treatment_b: 10}}
        - {name: ramp, weights: {control: 34, treatment_a: 33, treatment_b: 33}, gated: true,
           min_units: 1000000000}
"""


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_analyze", Path(__file__).with_name("analyze.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(units: int, repeat: int, root: Path) -> dict[str, Any]:
    path = root / f"events-{units}.duckdb"
    build_s, n = _generator().build_embedded(path, units)
    events = open_store(f"duckdb:///{path}")
    state = open_state("memory://")
    try:
        exp = loads_experiments(CONFIG).experiments[0]
        controller = RolloutController(
            state, [exp], AnalysisResults(events), hooks=[], leases=leases_for(state)
        )
        controller.register()
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            outcome = controller.tick_experiment(exp)
            times.append(time.perf_counter() - started)
            assert outcome.error is None, outcome.error
        return {
            "units": units,
            "events": n,
            "build_s": round(build_s, 1),
            "tick_s_median": round(statistics.median(times), 3),
            "tick_s": [round(t, 3) for t in times],
            "decision": outcome.decision.action,
        }
    finally:
        state.close()
        events.close()
        path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abllm-bench-tick-") as tmp:
        results = [run(u, args.repeat, Path(tmp)) for u in args.units]
    print(json.dumps({"machine": platform.machine(), "cpus": __import__("os").cpu_count(),
                      "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
