"""Scheduled replays (``eval.schedule``): run by the rollout controller, alerting on drift."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abllm.cli.main import app
from abllm.config import Experiment, loads_experiments
from abllm.eval.schedule import EvalScheduler
from abllm.events import open_store
from abllm.rollout.alerts import Alert

from .conftest import CONFIG


def config_text(dataset: Path, base_quality: float, every_s: float = 3600) -> str:
    schedule = (
        f"      schedule: {{every_s: {every_s}, dataset: '{dataset}',\n"
        "                 max_drift: {judge: 0.5, contains: 0.5}}\n"
    )
    return CONFIG.replace("QBASE", str(base_quality)) + schedule


def experiment(dataset: Path, base_quality: float) -> Experiment:
    return loads_experiments(config_text(dataset, base_quality)).experiments[0]


def test_drift_beyond_the_bound_alerts(dataset_path: Path, store_url: str) -> None:
    fired: list[Alert] = []
    store = open_store(store_url)
    try:
        now = datetime.now(UTC)
        first = EvalScheduler([experiment(dataset_path, 1.6)], store)
        assert [e.id for e in first.due(now)] == ["answers"]
        first.tick(now, fired.append)
        first.close()
        assert fired == []  # nothing to compare the first run with
        assert first.due(now + timedelta(seconds=10)) == []  # next one in an hour
        # A restart reads the last run from the store: not due before the hour is up.
        worse = EvalScheduler([experiment(dataset_path, 1.0)], store)
        assert worse.due(now + timedelta(minutes=30)) == []
        worse.tick(now + timedelta(hours=1, minutes=1), fired.append)
        worse.close()
    finally:
        store.close()
    assert [a.kind for a in fired] == ["eval_drift"]
    alert = fired[0]
    assert alert.experiment_id == "answers" and "base judge" in alert.message
    breach = alert.extra["drift"][0]
    assert breach["variant"] == "base" and breach["scorer"] == "judge"
    assert breach["diff"] < -0.5 and breach["paired"] is True
    assert alert.to_json()["compare_to"] == alert.extra["compare_to"]


def test_a_missing_dataset_alerts_eval_failed(tmp_path: Path, store_url: str) -> None:
    fired: list[Alert] = []
    store = open_store(store_url)
    try:
        scheduler = EvalScheduler([experiment(tmp_path / "gone.jsonl", 2.0)], store)
        assert scheduler.run(scheduler.experiments[0], fired.append) is None
    finally:
        store.close()
    assert fired[0].kind == "eval_failed" and "gone.jsonl" in fired[0].message


def test_rollout_run_replays_on_schedule(
    dataset_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = f"duckdb://{tmp_path}/ev.duckdb"
    config = tmp_path / "exp.yaml"
    runner = CliRunner()
    config.write_text(config_text(dataset_path, 1.6, every_s=1))
    args = ["rollout", "run", str(config), "--once", "--store", store]
    assert runner.invoke(app, args).exit_code == 0
    time.sleep(1.1)
    config.write_text(config_text(dataset_path, 1.0, every_s=1))
    with caplog.at_level(logging.WARNING, logger="abllm.alerts"):
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert any("eval drift: base judge" in r.getMessage() for r in caplog.records)
    events = open_store(store)
    try:
        runs = events.query(
            f"SELECT count(DISTINCT trace_id) FROM {events.events_relation} WHERE type = 'eval'"
        )
    finally:
        events.close()
    assert runs == [(2,)]
