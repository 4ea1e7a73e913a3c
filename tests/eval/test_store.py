"""Eval runs round-trip through every event store backend as ``eval`` events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from abllm.errors import NotFound
from abllm.eval.model import RunInfo, Trial
from abllm.eval.store import load_run, save_run
from abllm.events import COLUMNS, WELL_KNOWN_METRICS, open_store

INFO = RunInfo(
    run_id="run-1",
    experiment_id="answers",
    experiment_version=2,
    started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    dataset="rows.jsonl",
    dataset_sha256="ab" * 32,
    repeat=2,
    scorers=("contains", "latency_ms", "judge"),
    judge={"provider": "sim", "model": "sim-large", "prompt_version": "j1", "prompt_sha": "x"},
)


def test_run_round_trips(any_store_url: str) -> None:
    trials = [
        Trial("r1", "base", 0, "out", {"contains": 1.0, "latency_ms": 12.5, "judge": 4.0}),
        Trial("r1", "base", 1, "out", {"contains": 0.0, "latency_ms": 10.0}, judge_error="bad"),
        Trial("r2", "better", 0, None, {}, error_type="timeout"),
    ]
    store = open_store(any_store_url)
    try:
        variants = {"base": {"provider": "sim", "model": "sim-small", "prompt_version": "v1"}}
        assert save_run(store, INFO, trials, variants) == 3
        other = RunInfo(**{**INFO.__dict__, "run_id": "run-2"})
        save_run(store, other, trials[:1], variants)
        run = load_run(store, "run-1")
        # No eval score lands in a well-known metric column that live analysis reads.
        cols = ", ".join(WELL_KNOWN_METRICS)
        rows = store.query(f"SELECT {cols} FROM {store.events_relation} WHERE type = 'eval'")
        assert all(v is None for row in rows for v in row)
        assert len(COLUMNS) > len(WELL_KNOWN_METRICS)
        with pytest.raises(NotFound, match="--compare-to nope"):
            load_run(store, "nope")
    finally:
        store.close()
    assert run.info == INFO
    assert [(t.row_id, t.variant_id, t.trial, t.scores, t.error_type) for t in run.trials] == [
        (t.row_id, t.variant_id, t.trial, t.scores, t.error_type) for t in trials
    ]


def test_answers_are_stored_redacted_only_with_log_payloads(store_url: str) -> None:
    trial = Trial("r1", "base", 0, "mail me at ann@example.com", {"length": 26.0})
    store = open_store(store_url)
    try:
        save_run(store, INFO, [trial], {})
        save_run(
            store, RunInfo(**{**INFO.__dict__, "run_id": "logged"}), [trial], {}, log_payloads=True
        )
        rows = store.query(f"SELECT trace_id, attrs FROM {store.events_relation} ORDER BY trace_id")
    finally:
        store.close()
    attrs = {run: json.loads(a) for run, a in rows}
    assert "response" not in attrs["run-1"]
    assert attrs["logged"]["response"] == "mail me at [EMAIL]"
