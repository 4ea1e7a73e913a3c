"""API keys: every /v1/ route needs one when configured; probes and the dashboard stay open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient

from abllm.config import load_experiments
from abllm.server import create_app
from abllm.server.auth import keys_from_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    app = create_app(config, api_keys=["s3cret"])
    with TestClient(app) as c:
        yield c


BODY = {"model": "exp_summarize_v2", "user": "u1", "messages": [{"role": "user", "content": "hi"}]}


def test_v1_routes_need_a_key(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_bearer_and_x_api_key_pass(client: TestClient) -> None:
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/v1/models", headers={"X-Api-Key": "s3cret"}).status_code == 200


def test_probes_stay_open(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLLM_API_KEYS", "a, b,,")
    assert keys_from_env(["c"]) == ("c", "a", "b")


def test_openai_client_sends_its_key_as_bearer() -> None:
    # The official SDK's api_key is what the gateway checks: no custom header needed.
    assert "Authorization" in openai.OpenAI(api_key="k", base_url="http://x/v1").auth_headers
