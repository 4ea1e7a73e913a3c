"""The app around the gateway: health, metrics, feedback and results, on a real event store."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from abllm.analysis import analyze, result_to_json
from abllm.config import loads_experiments
from abllm.events import open_store
from abllm.server import ServerThread, create_app

CONFIG = """
experiments:
  - id: exp_sum
    aliases: [summarizer]
    log_payloads: true
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, system_prompt: "Summarize.",
              sim: {time_scale: 0, error_rate: 0, quality: 3.5}}
      - id: treatment
        llm: {provider: sim, model: sim-small, system_prompt: "Summarize briefly.",
              sim: {time_scale: 0, error_rate: 0, quality: 4.2}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
  - id: exp_hold
    holdout: 50
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
            ctype = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        raw, status, ctype = err.read(), err.code, err.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in ctype else raw.decode()


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Any, Any]]:
    tmp = tmp_path_factory.mktemp("server")
    config = loads_experiments(CONFIG)
    store = open_store(f"duckdb:///{tmp / 'events.duckdb'}")
    app = create_app(config, store, spool_dir=tmp / "spool")
    with ServerThread(app) as srv:
        yield srv.url, store, config
    store.close()


def test_healthz_and_metrics(server) -> None:
    url, _, _ = server
    status, health = http("GET", f"{url}/healthz")
    assert status == 200 and (health["status"], health["experiments"]) == ("ok", 2)
    assert (health["store"]["status"], health["spool"]["status"]) == ("up", "empty")
    assert health["dead_letters"]["count"] == 0 and health["controller"] is None
    client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    client.chat.completions.create(
        model="summarizer", messages=[{"role": "user", "content": "hi"}], user="metrics-user"
    )
    status, text = http("GET", f"{url}/metrics")
    assert status == 200
    assert 'abllm_requests_total{experiment="exp_sum"' in text
    assert "abllm_request_latency_seconds_bucket" in text
    for gauge in ("store_up 1.0", "spool_bytes 0.0", "dead_letters 0.0", "replay_lag_seconds 0.0"):
        assert f"abllm_event_{gauge}" in text
    assert [m.id for m in client.models.list()] == ["exp_sum", "summarizer", "exp_hold"]


def test_feedback_by_trace_and_by_unit_then_results(server) -> None:
    url, store, config = server
    client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    traces = {}
    for i in range(40):
        raw = client.chat.completions.with_raw_response.create(
            model="exp_sum",
            messages=[{"role": "user", "content": f"text {i}: write to me at jo@example.com"}],
            user=f"fb-user-{i}",
        )
        traces[f"fb-user-{i}"] = (raw.headers["x-abllm-trace-id"], raw.headers["x-abllm-variant"])
    for i, (unit, (trace, variant)) in enumerate(traces.items()):
        if i % 2:
            body = {"trace_id": trace, "rating": 5 if variant == "treatment" else 3}
        else:
            body = {"experiment_id": "exp_sum", "unit_id": unit, "thumbs_up": True, "rating": 4}
        status, answer = http(
            "POST", f"{url}/v1/feedback", {**body, "comment": "call 555-123-4567"}
        )
        assert status == 200, answer
        assert answer["recorded"] is True
        assert answer["variant_id"] == variant
        assert answer["unit_id"] == unit
    rows = store.query(
        "SELECT variant_id, unit_id, rating, attrs FROM abllm_events WHERE type = 'feedback'"
    )
    assert len(rows) == 40
    assert all("555-123-4567" not in (attrs or "") for *_, attrs in rows)
    # log_payloads: prompts and answers are stored, redacted.
    prompts = store.query(
        "SELECT attrs FROM abllm_events WHERE type = 'llm_call' AND unit_id = 'fb-user-1'"
    )
    attrs = json.loads(prompts[0][0])
    assert "[EMAIL]" in attrs["prompt"] and "jo@example.com" not in attrs["prompt"]
    assert attrs["response"]

    status, results = http("GET", f"{url}/v1/experiments/exp_sum/results")
    assert status == 200
    expected = json.loads(json.dumps(result_to_json(analyze(config.experiments[0], store))))
    results.pop("computed_at"), expected.pop("computed_at")
    # The same JSON as `abllm analyze --json` (DuckDB's parallel sums may differ in the last bit).
    assert rounded(results) == rounded(expected)
    assert results["metrics"]["rating"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"rating": 4}, 400, "trace_id"),
        ({"trace_id": "nope", "rating": 4}, 404, "trace_id"),
        ({"experiment_id": "nope", "unit_id": "u", "rating": 4}, 404, "nope"),
        ({"experiment_id": "exp_sum", "unit_id": "u"}, 400, "metric"),
        ({"experiment_id": "exp_sum", "unit_id": "u", "rating": [1]}, 400, "rating"),
        ("not json", 400, "JSON"),
    ],
)
def test_feedback_errors_name_the_field(server, body, status, needle) -> None:
    url, _, _ = server
    if isinstance(body, str):
        req = urllib.request.Request(f"{url}/v1/feedback", data=body.encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        got_status, answer = err.value.code, json.loads(err.value.read())
    else:
        got_status, answer = http("POST", f"{url}/v1/feedback", body)
    assert got_status == status
    assert needle in answer["error"]["message"]


def test_email_unit_ids_are_stored_as_pseudonyms(server) -> None:
    url, store, _ = server
    client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="exp_sum", messages=[{"role": "user", "content": "hi"}], user="ann@example.com"
    )
    trace = raw.headers["x-abllm-trace-id"]
    status, answer = http("POST", f"{url}/v1/feedback", {"trace_id": trace, "rating": 5})
    assert status == 200 and answer["unit_id"].startswith("pii:")
    status, again = http(
        "POST",
        f"{url}/v1/feedback",
        {"experiment_id": "exp_sum", "unit_id": "ann@example.com", "rating": 4},
    )
    assert again["unit_id"] == answer["unit_id"]
    rows = store.query("SELECT DISTINCT unit_id FROM abllm_events WHERE trace_id = ?", [trace])
    assert rows == [(answer["unit_id"],)]


def test_holdback_feedback_is_recorded_without_a_variant(server) -> None:
    from abllm.assign import Reason, assign

    url, _, config = server
    exp = config.get("exp_hold")
    held = next(f"h{i}" for i in range(500) if assign(exp, f"h{i}").reason is Reason.HOLDOUT)
    client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="exp_hold", messages=[{"role": "user", "content": "hi"}], user=held
    )
    assert raw.headers["x-abllm-variant"] == "control"
    trace = raw.headers["x-abllm-trace-id"]
    status, answer = http("POST", f"{url}/v1/feedback", {"trace_id": trace, "rating": 2})
    assert (status, answer["recorded"], answer["variant_id"]) == (200, True, None)
    status, answer = http(
        "POST", f"{url}/v1/feedback", {"experiment_id": "exp_hold", "unit_id": held, "rating": 3}
    )
    assert (status, answer["recorded"], answer["variant_id"]) == (200, True, None)


def test_results_unknown_experiment(server) -> None:
    url, _, _ = server
    status, answer = http("GET", f"{url}/v1/experiments/nope/results")
    assert status == 404
    assert answer["error"]["code"] == "not_found"
