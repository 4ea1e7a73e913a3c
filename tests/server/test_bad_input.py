"""Bad input is a 4xx in the documented error shape on every route, never a 5xx or an echo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from abllm.config import load_experiments
from abllm.rollout import register_experiments
from abllm.server import create_app
from abllm.server.guard import ADMIN_BODY_BYTES
from abllm.state import open_state

ROOT = Path(__file__).resolve().parents[2]
KILL = "/v1/admin/experiments/exp_summarize_v2/kill?wait_s=0"


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    state = open_state("memory://")
    register_experiments(state, config.experiments, actor="test")
    with TestClient(create_app(config, state_store=state)) as c:
        yield c
    state.close()


def test_unknown_routes_and_methods_answer_in_the_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nope")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "no route GET /v1/nope"}}
    r = client.delete("/v1/models")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_admin_body_over_the_limit_is_413_before_reading_it(client: TestClient) -> None:
    # The admin routes took a 300 MB body.
    big = b'{"reason": "' + b"x" * (ADMIN_BODY_BYTES + 10) + b'"}'
    r = client.post(KILL, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"reason": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    r = client.post(KILL, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_invalid_body_names_the_field_without_echoing_it(client: TestClient) -> None:
    secret = "hunter2-" + "y" * 3000
    r = client.post(KILL, json={"reason": secret})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith("body.reason:")
    assert "hunter2" not in r.text and "detail" not in r.json()
    r = client.post(KILL, json={"reason": 5, "bogus": 1})
    assert r.status_code == 400 and "body.bogus" in r.json()["error"]["message"]
    r = client.post(KILL, content=b"\xff\xfe{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = client.get("/v1/admin/experiments/exp_summarize_v2/audit?limit=-1")
    assert r.status_code == 400 and "query.limit" in r.json()["error"]["message"]


def test_chat_depth_and_message_count_limits(client: TestClient) -> None:
    # 1,000 levels inside a message made the sim provider raise RecursionError (a 502).
    nested = b"[" * 1000 + b"]" * 1000
    deep = (
        b'{"model":"exp_summarize_v2","messages":[{"role":"user","content":"hi","x":'
        + nested
        + b"}]}"
    )
    r = client.post(
        "/v1/chat/completions", content=deep, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "nested deeper" in r.json()["error"]["message"]
    many = {"model": "exp_summarize_v2", "messages": [{"role": "user", "content": "hi"}] * 5000}
    r = client.post("/v1/chat/completions", json=many)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
