"""Bad input at the HTTP edge: 400 naming the field, never a 500, on every path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abllm.config import loads_experiments
from abllm.events import EventPipeline, EventStore, open_store
from abllm.server import ServerThread, create_app
from abllm.telemetry import pseudonymous_id
from events.conftest import drop_store

from .test_app import http

CONFIG = """
experiments:
  - id: edge
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
  - id: payloads
    log_payloads: true
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str
) -> Iterator[tuple[str, EventStore, EventPipeline, Path]]:
    tmp = tmp_path_factory.mktemp("edge")
    url = f"{pg_url}?schema=t_edge_{time.time_ns()}"
    store = open_store(url)
    pipeline = EventPipeline(store, spool_dir=tmp / "spool", flush_interval_s=0.01)
    app = create_app(loads_experiments(CONFIG), store, pipeline=pipeline)
    with ServerThread(app) as srv:
        yield srv.url, store, pipeline, tmp / "spool"
    pipeline.close()
    store.close()
    drop_store("postgres", url)


EVENT: dict[str, Any] = {"type": "outcome", "experiment_id": "edge", "unit_id": "u1"}


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"experiment_version": 2**31}, "experiment_version"),
        ({"experiment_version": 4294967297}, "experiment_version"),
        ({"unit_id": "u\u0000"}, "unit_id"),
        ({"trace_id": "\u0000"}, "trace_id"),
        ({"variant_id": "v\u0000"}, "variant_id"),
        ({"metrics": {"latency_ms": 10**400}}, "metrics"),
        ({"metrics": {"rating": 10**30}}, "metrics"),
        ({"ts": "0001-01-01T00:00:00+05:00"}, "ts"),
    ],
)
def test_events_refuse_unstorable_values(
    server: tuple[str, EventStore, EventPipeline, Path], change: dict[str, Any], field: str
) -> None:
    url = server[0]
    for body in ([{**EVENT, **change}], {"events": [{**EVENT, **change}]}):
        status, answer = http("POST", f"{url}/v1/events", body)
        assert status == 400, answer
        assert field in answer["error"]["message"]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"experiment_id": "edge", "unit_id": "u1", "metrics": 5}, "metrics"),
        ({"experiment_id": "edge", "unit_id": "u1", "metrics": [1]}, "metrics"),
        (
            {
                "experiment_id": "edge",
                "unit_id": "u1",
                "rating": 4,
                "ts": "0001-01-01T00:00:00+05:00",
            },
            "ts",
        ),
        ({"experiment_id": "edge", "unit_id": "u1", "rating": 10**30}, "rating"),
        ({"experiment_id": "edge", "unit_id": "u\u0000", "rating": 4}, "unit_id"),
        ({"experiment_id": "edge", "unit_id": "u" * 300, "rating": 4}, "unit_id"),
        ({"trace_id": "t\u0000", "rating": 4}, "trace_id"),
    ],
)
def test_feedback_refuses_bad_fields(
    server: tuple[str, EventStore, EventPipeline, Path], body: dict[str, Any], field: str
) -> None:
    status, answer = http("POST", f"{server[0]}/v1/feedback", body)
    assert status == 400, answer
    assert field in answer["error"]["message"]


def chat(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.postgres
@pytest.mark.parametrize("user", ["u" * 300, "u" * 60_000, "nul\u0000user"])
def test_chat_user_gets_the_event_limits_up_front(
    server: tuple[str, EventStore, EventPipeline, Path], user: str
) -> None:
    status, answer = chat(server[0], {"model": "edge", "messages": MESSAGES, "user": user})
    assert status == 400, answer
    assert answer["error"]["param"] == "user"
    assert "user" in answer["error"]["message"] and "bytes" not in answer["error"]["message"]


@pytest.mark.postgres
def test_chat_with_an_overlong_header_unit_answers_and_stores_its_pseudonym(
    server: tuple[str, EventStore, EventPipeline, Path],
) -> None:
    url, store, pipeline, _ = server
    unit = "h" * 300  # over the 200-character id limit: stored as a stable pseudonym
    status, _ = chat(url, {"model": "edge", "messages": MESSAGES}, {"X-Abllm-Unit": unit})
    assert status == 200
    pipeline.flush(10)
    assert store.query("SELECT count(*) FROM abllm_events WHERE length(unit_id) > 200") == [(0,)]
    stored = store.query(
        f"SELECT count(*) FROM abllm_events WHERE unit_id = '{pseudonymous_id(unit)}'"
    )
    assert stored[0][0] >= 1


@pytest.mark.postgres
def test_a_chat_whose_logged_prompt_is_too_big_answers_and_keeps_its_measurements(
    server: tuple[str, EventStore, EventPipeline, Path],
) -> None:
    url, store, pipeline, _ = server
    big = [{"role": "user", "content": "😀" * 9000}]  # 36 KB of UTF-8 once logged
    status, answer = chat(url, {"model": "payloads", "messages": big, "user": "big-prompt"})
    assert status == 200, answer
    # The call's event is built after the answer is sent, its 36 KB prompt redacted on the
    # redaction pool: wait for it rather than for the flush alone.
    deadline = time.monotonic() + 15
    rows: list[tuple[Any, ...]] = []
    while not rows and time.monotonic() < deadline:
        pipeline.flush(10)
        rows = store.query(
            "SELECT latency_ms, attrs FROM abllm_events WHERE experiment_id = 'payloads' "
            "AND type = 'llm_call' AND unit_id = 'big-prompt'"
        )
        if not rows:
            time.sleep(0.05)
    assert len(rows) == 1 and rows[0][0] is not None
    assert json.loads(rows[0][1])["truncated"] == "prompt"
