"""deploy/grafana/abllm.json is built on what ``GET /metrics`` exports (every panel's metric is
exported, every exported metric has a panel); the state gauges move."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from abllm.config import loads_experiments
from abllm.events import open_store
from abllm.rollout import register_experiments
from abllm.server import ServerThread, create_app
from abllm.state import StateView, open_state

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "abllm.json"
SIM = "sim: {time_scale: 0, error_rate: 0}"
CONFIG = f"""
experiments:
  - id: exp_swap
    variants:
      - {{id: large, control: true, llm: {{provider: sim, model: sim-large, {SIM}}}}}
      - {{id: small, llm: {{provider: sim, model: sim-small, {SIM}}}}}
    rollout:
      stages:
        - {{name: day-0, traffic: 5, after_days: 0}}
        - {{name: day-2, traffic: 25, after_days: 2}}
  - id: exp_plain
    variants:
      - {{id: control, control: true, llm: {{provider: sim, model: sim-small, {SIM}}}}}
      - {{id: treatment, llm: {{provider: sim, model: sim-small, {SIM}}}}}
"""
# Suffixes the Prometheus text format adds to a family's name, per type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("grafana")
    config = loads_experiments(CONFIG)
    store = open_store(f"duckdb:///{tmp / 'events.duckdb'}")
    state_store = open_state("memory://")
    register_experiments(state_store, config.experiments, actor="test")
    view = StateView(state_store).start()
    app = create_app(config, store, state=view, state_store=state_store, spool_dir=tmp / "spool")
    with ServerThread(app) as srv:
        yield srv.url
    view.close()
    state_store.close()
    store.close()


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def exported(text: str) -> set[str]:
    """Every series name the exposition can hold, samples or not yet."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_panel_queries_exported_metrics(server: str) -> None:
    client = OpenAI(base_url=f"{server}/v1", api_key="x", max_retries=0)
    for i in range(20):  # traffic, so that labelled series exist too
        client.chat.completions.create(
            model="exp_plain", messages=[{"role": "user", "content": "hi"}], user=f"u{i}"
        )
    names = exported(scrape(server))
    dashboard = json.loads(DASHBOARD.read_text())
    queried: set[str] = set()
    for panel in panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            metrics = set(re.findall(r"\babllm_[a-z_]+\b", target["expr"]))
            assert metrics, (panel["title"], target["expr"])
            assert metrics <= names, (panel["title"], sorted(metrics - names))
            queried |= metrics
    families = {
        f.name
        for f in text_string_to_metric_families(scrape(server))
        if not f.name.endswith("_created")
    }
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", m) for m in queried}
    assert families <= shown, (
        f"exported but on no panel of {DASHBOARD.name}: {sorted(families - shown)}; add a panel"
    )
    variable = dashboard["templating"]["list"][1]["query"]["query"]
    assert set(re.findall(r"\babllm_[a-z_]+\b", variable)) <= names
    # the state gauges and the gateway's own series all have a panel
    for needed in (
        "abllm_experiment_killed",
        "abllm_experiment_paused",
        "abllm_rollout_stage",
        "abllm_guardrail_held",
        "abllm_guardrail_variant_paused",
        "abllm_requests_total",
        "abllm_request_latency_seconds_bucket",
    ):
        assert needed in queried, needed


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "abllm" and dashboard["title"] == "abllm"
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def gauges(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("abllm_experiment_", "abllm_rollout_", "abllm_guardrail_"))
    }


def test_state_gauges_follow_kill_and_stage(server: str) -> None:
    g = gauges(scrape(server))
    swap = (("experiment", "exp_swap"),)
    assert g[("abllm_experiment_killed", swap)] == 0.0
    assert g[("abllm_rollout_stage", swap)] == 0.0
    assert g[("abllm_rollout_traffic_percent", swap)] == 5.0
    assert g[("abllm_guardrail_held", swap)] == 0.0
    assert g[("abllm_guardrail_variant_paused", (*swap, ("variant", "small")))] == 0.0
    assert ("abllm_rollout_stage", (("experiment", "exp_plain"),)) not in g  # no rollout plan
    assert g[("abllm_rollout_traffic_percent", (("experiment", "exp_plain"),))] == 100.0

    req = urllib.request.Request(
        f"{server}/v1/admin/experiments/exp_swap/kill", data=b"{}", method="POST"
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    g = gauges(scrape(server))
    assert g[("abllm_experiment_killed", swap)] == 1.0
    assert g[("abllm_experiment_killed", (("experiment", "exp_plain"),))] == 0.0
