"""One OpenFeature flag evaluation through ``AbllmProvider`` beside the SDK's own floor.

Peers, same run: the OpenFeature SDK's ``InMemoryProvider`` (what the SDK itself costs per
evaluation: hooks, context merging, type checks) and ``Client.assign`` alone (abllm's part).
Prints one JSON object, microseconds per evaluation (median of several passes).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from abllm import Client
from abllm.openfeature import AbllmProvider

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "summarize.yaml"
UNITS = 5_000
PASSES = 5


def _us(fn: Callable[[EvaluationContext], object], contexts: list[EvaluationContext]) -> float:
    runs = []
    for _ in range(PASSES):
        start = time.perf_counter()
        for ctx in contexts:
            fn(ctx)
        runs.append((time.perf_counter() - start) / len(contexts) * 1e6)
    return statistics.median(runs)


def main() -> None:
    contexts = [EvaluationContext(f"user-{i}") for i in range(UNITS)]
    with tempfile.TemporaryDirectory() as tmp:
        client = Client(CONFIG, store="duckdb:///:memory:", spool_dir=Path(tmp) / "spool")
        flags = api.get_client()
        api.set_provider(
            InMemoryProvider({"f": InMemoryFlag("a", {"a": {"model": "m"}, "b": {"model": "n"}})})
        )
        in_memory = _us(lambda ctx: flags.get_object_details("f", {}, ctx), contexts)
        api.set_provider(AbllmProvider(client))
        abllm_of = _us(lambda ctx: flags.get_object_details("exp_summarize_v2", {}, ctx), contexts)
        assign = _us(
            lambda ctx: client.assign("exp_summarize_v2", str(ctx.targeting_key)), contexts
        )
        api.shutdown()
        client.close()
    print(
        json.dumps(
            {
                "bench": "openfeature_provider",
                "units": UNITS,
                "abllm_provider_us": round(abllm_of, 1),
                "sdk_in_memory_provider_us": round(in_memory, 1),
                "client_assign_us": round(assign, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
