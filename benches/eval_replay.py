"""Throughput of ``abllm eval``'s replay on the ``sim`` provider (no waits), judge included.

Replays ROWS rows through two variants with every default scorer and a sim judge, into an
in-memory DuckDB store, at a few concurrencies; prints one JSON object with answers per second
(an answer = one variant call + its judge call + scoring) and the time to store the run.
"""

from __future__ import annotations

import asyncio
import json
import time

from abllm.config import loads_experiments
from abllm.eval.dataset import Dataset, EvalRow
from abllm.eval.service import EvalOptions, run_eval
from abllm.events import open_store
from abllm.providers import ProviderRegistry

ROWS = 1000
CONFIG = """
experiments:
  - id: bench
    variants:
      - {id: a, control: true, llm: {model: sim-small, sim: {time_scale: 0, quality: 2}}}
      - {id: b, llm: {model: sim-small, sim: {time_scale: 0, quality: 4}}}
    eval:
      judge: {llm: {model: sim-large, sim: {time_scale: 0}}, rubric: On topic.}
"""


async def _one(concurrency: int) -> dict[str, float]:
    exp = loads_experiments(CONFIG).experiments[0]
    rows = [
        EvalRow(f"r{i}", [{"role": "user", "content": f"question {i} about costs"}], ("costs",))
        for i in range(ROWS)
    ]
    store = open_store("duckdb:///:memory:")
    registry = ProviderRegistry()
    try:
        start = time.perf_counter()
        await run_eval(
            exp, Dataset("bench", rows, "x"), EvalOptions(concurrency=concurrency), store, registry
        )
        elapsed = time.perf_counter() - start
    finally:
        await registry.aclose()
        store.close()
    answers = ROWS * len(exp.variants)
    return {
        "concurrency": concurrency,
        "answers_per_s": round(answers / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    results = [asyncio.run(_one(c)) for c in (1, 8, 32)]
    print(json.dumps({"bench": "eval_replay", "rows": ROWS, "variants": 2, "runs": results}))


if __name__ == "__main__":
    main()
