"""No raw key reaches the logs, the state store or the audit rows."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from abllm.config import load_experiments
from abllm.rollout import register_experiments
from abllm.server import create_app
from abllm.state import open_state
from abllm.state.keycache import KeyCache
from abllm.state.keys import create_key, keys_for

ROOT = Path(__file__).resolve().parents[2]
STATIC = "static-admin-key-0123456789"


def test_keys_appear_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state_file = tmp_path / "state.sqlite"
    state = open_state(f"sqlite:///{state_file}")
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    register_experiments(state, config.experiments, actor="test")
    _, managed = create_key(keys_for(state), "admin", "ops")
    app = create_app(
        config, state_store=state, admin_keys=[STATIC], managed_keys=KeyCache(keys_for(state))
    )
    base = "/v1/admin/experiments/exp_summarize_v2"
    with TestClient(app) as c:
        for key in (STATIC, managed):
            headers = {"Authorization": f"Bearer {key}"}
            assert c.post(f"{base}/kill?wait_s=0", headers=headers).status_code == 200
            assert c.post(f"{base}/resume?wait_s=0", headers=headers).status_code == 200
            c.post("/login", data={"key": key})
            c.get("/v1/models", headers={"Authorization": f"Bearer {key}x"})  # a wrong key
        audit = c.get(f"{base}/audit", headers={"Authorization": f"Bearer {STATIC}"}).text
    state.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for key in (STATIC, managed):
        assert key not in audit and key not in logged
        assert key.encode() not in stored
    assert "ops (abllm_ak_" in audit
