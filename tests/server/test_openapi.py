"""The OpenAPI document covers every route with typed bodies, and real answers match it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from abllm.config import load_experiments
from abllm.rollout import register_experiments
from abllm.server import create_app
from abllm.state import open_state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    state = open_state("memory://")
    register_experiments(state, config.experiments, actor="test")
    with TestClient(create_app(config, state_store=state)) as c:
        yield c
    state.close()


def _validator(doc: dict[str, Any], name: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_chat_feedback_events_and_admin_are_typed(client: TestClient) -> None:
    # /v1/chat/completions was missing and the other bodies untyped.
    doc = client.get("/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/feedback", "/v1/events"):
        post = doc["paths"][path]["post"]
        assert "$ref" in post["requestBody"]["content"]["application/json"]["schema"], path
        assert "$ref" in post["responses"]["200"]["content"]["application/json"]["schema"], path
    admin = [p for p in doc["paths"] if p.startswith("/v1/admin/")]
    assert len(admin) == 6
    for path in admin:
        for op in doc["paths"][path].values():
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert ok["$ref"].endswith(("ChangeResponse", "StateResponse", "AuditResponse"))
    text = json.dumps(doc)
    assert '"422"' not in text and "HTTPValidationError" not in text
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


def test_a_real_admin_answer_matches_its_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    base = "/v1/admin/experiments/exp_summarize_v2"
    _validator(doc, "ChangeResponse").validate(client.post(f"{base}/kill?wait_s=0").json())
    _validator(doc, "StateResponse").validate(client.get(f"{base}/state").json())
    _validator(doc, "AuditResponse").validate(client.get(f"{base}/audit").json())


def test_a_real_chat_answer_matches_its_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = {
        "model": "exp_summarize_v2",
        "user": "u1",
        "messages": [{"role": "user", "content": "hi"}],
    }
    _validator(doc, "ChatCompletionRequest").validate(body)
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    _validator(doc, "ChatCompletionResponse").validate(r.json())
    bad = client.post("/v1/chat/completions", json={"model": 1})
    assert bad.status_code == 400
    _validator(doc, "ErrorResponse").validate(bad.json())
