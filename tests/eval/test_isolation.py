"""Stored eval runs never change the live analysis of the same experiment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from abllm.analysis import analyze, result_to_json
from abllm.config import load_experiments
from abllm.eval.dataset import load_dataset
from abllm.eval.service import EvalOptions, run_eval
from abllm.events import Event, open_store
from abllm.providers import ProviderRegistry

ROOT = Path(__file__).resolve().parents[2]


def live_events(exp_id: str) -> list[Event]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for i in range(40):
        # Unit ids equal the eval dataset's row ids (q1..q6) for some units on purpose.
        unit, variant = f"q{i}", ("control", "treatment")[i % 2]
        ts = t0 + timedelta(minutes=i)
        common = {"experiment_id": exp_id, "unit_id": unit, "variant_id": variant}
        events.append(Event(type="exposure", ts=ts, **common))
        events.append(
            Event(
                type="llm_call",
                ts=ts + timedelta(seconds=1),
                trace_id=f"t{i}",
                metrics={"latency_ms": 300.0 + 7 * i, "error": False, "cost_usd": 0.001},
                **common,
            )
        )
        events.append(
            Event(
                type="feedback",
                ts=ts + timedelta(seconds=2),
                trace_id=f"t{i}",
                metrics={"rating": 1 + i % 5, "thumbs_up": i % 3 == 0},
                **common,
            )
        )
    return events


def test_analysis_ignores_eval_runs(tmp_path: Path) -> None:
    exp = load_experiments(ROOT / "examples" / "summarize.yaml").get("exp_summarize_v2")
    store = open_store(f"duckdb://{tmp_path}/ev.duckdb")
    now = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        store.append(live_events(exp.id))
        before = result_to_json(analyze(exp, store, now=now))

        async def replay() -> None:
            registry = ProviderRegistry()
            try:
                dataset = load_dataset(ROOT / "examples" / "summarize_eval.jsonl")
                opts = EvalOptions(scorers=("latency_ms", "cost_usd"))
                outcome = await run_eval(exp, dataset, opts, store, registry)
                assert outcome.report["stored"] is True
            finally:
                await registry.aclose()

        asyncio.run(replay())
        assert store.count(exp.id) > 120  # the eval events are there ...
        after = result_to_json(analyze(exp, store, now=now))
    finally:
        store.close()
    # ... and change nothing the analysis reports (up to the last bits of a float sum, whose
    # order a parallel aggregation may change)
    assert _close(after, before)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True)
    return bool(a == b)
