"""The admin router: kill, resume, advance, rollback, state and audit over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from abllm.rollout import register_experiment
from abllm.server.admin import build_admin_router
from abllm.state import StateStore, StateView, open_state

from .helpers import experiment

BASE = "/v1/admin/experiments/exp_r"


@pytest.fixture
def store() -> Iterator[StateStore]:
    s = open_state("memory://")
    register_experiment(s, experiment(), actor="serve")
    yield s
    s.close()


@pytest.fixture
def client(store: StateStore) -> TestClient:
    app = FastAPI()
    app.include_router(build_admin_router(store))
    return TestClient(app)


def test_kill_reaches_a_view_and_is_audited(client: TestClient, store: StateStore) -> None:
    view = StateView(store).start()
    try:
        r = client.post(
            f"{BASE}/kill", json={"reason": "bad answers"}, headers={"X-Abllm-Actor": "bob"}
        )
        assert r.status_code == 200 and r.json()["killed"] and r.json()["runtime"]["killed"]
        assert view.get("exp_r").killed
        r = client.post(f"{BASE}/resume", json={"actor": "carol"})
        assert r.status_code == 200 and not r.json()["killed"]
        assert not view.get("exp_r").killed
    finally:
        view.close()
    audit = client.get(f"{BASE}/audit").json()["audit"]
    assert [(a["action"], a["actor"]) for a in audit] == [
        ("register", "serve"),
        ("kill", "bob"),
        ("resume", "carol"),
    ]
    assert audit[1]["reason"] == "bad answers"
    assert client.get(f"{BASE}/audit", params={"limit": 1}).json()["audit"][0]["action"] == "resume"


@pytest.fixture
def serving(store: StateStore) -> Iterator[StateView]:
    """A live serving process's view: changes are confirmed at once, not after a wait."""
    view = StateView(store).start()
    yield view
    view.close()


def test_rollout_moves_and_errors(client: TestClient, serving: StateView) -> None:
    assert client.get(f"{BASE}/state").json()["stage"] == 0
    r = client.post(f"{BASE}/rollout/advance")
    assert r.status_code == 200 and r.json()["stage"] == 1
    assert r.json()["weights"] == {"control": 60.0, "a": 20.0, "b": 20.0}
    client.post(f"{BASE}/rollout/advance")
    r = client.post(f"{BASE}/rollout/advance")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = client.post(f"{BASE}/rollout/advance", json={"winner": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.post(f"{BASE}/rollout/advance", json={"winner": "a", "reason": "SHIP"})
    assert r.status_code == 200 and r.json()["winner_percent"] == 75
    r = client.post(f"{BASE}/rollout/rollback", json={"actor": "dana"})
    assert r.status_code == 200 and r.json()["winner"] is None and r.json()["held"]
    assert client.get("/v1/admin/experiments/unknown/state").status_code == 404
    assert client.get("/v1/admin/experiments/unknown/audit").status_code == 404
    assert client.post(f"{BASE}/kill", json={"oops": 1}).status_code == 422


def test_changes_report_how_many_live_processes_applied_them(
    client: TestClient, store: StateStore
) -> None:
    r = client.post(f"{BASE}/kill", params={"wait_s": 0})
    applied = r.json()["applied"]
    assert (applied["live"], applied["applied"], applied["complete"]) == (0, 0, True)
    views = [StateView(store, name=f"gw{i}").start() for i in range(2)]
    try:
        r = client.post(f"{BASE}/resume")
        applied = r.json()["applied"]
        assert applied["message"] == "applied by 2 of 2 live processes" and applied["complete"]
        assert applied["version"] == r.json()["version"] and applied["pending"] == []
        views[1].close()
        views[1].store.heartbeat(views[1].beat())  # frozen: a fresh beat, no longer following
        r = client.post(f"{BASE}/kill", params={"wait_s": 0.3})
        applied = r.json()["applied"]
        assert applied["message"] == "applied by 1 of 2 live processes"
        assert not applied["complete"] and applied["pending"][0]["version"] == 3
        assert r.status_code == 200 and r.json()["killed"]  # recorded all the same
    finally:
        views[0].close()
    assert client.post(f"{BASE}/kill", params={"wait_s": 11}).status_code == 422


@pytest.mark.parametrize(
    "route", ["kill", "resume", "rollout/advance", "rollout/rollback", "state", "audit"]
)
def test_unknown_experiment_is_404_naming_known_ids(
    route: str, client: TestClient, store: StateStore
) -> None:
    before = store.snapshot()
    url = f"/v1/admin/experiments/exp_rr/{route}"
    r = client.get(url) if route in ("state", "audit") else client.post(url)
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found"
    assert "unknown experiment 'exp_rr'" in error["message"]
    assert "known: exp_r" in error["message"] and "did you mean 'exp_r'?" in error["message"]
    assert store.snapshot() == before and store.audit("exp_rr") == []


def test_kill_through_the_server_serves_control(tmp_path: object) -> None:
    """The app factory with a state store: the admin kill reaches the gateway's hot path."""
    from abllm.config import ExperimentFile
    from abllm.server import create_app

    exp = experiment(
        rollout=None,
        variants=[
            {
                "id": "control",
                "control": True,
                "llm": {"model": "sim-small", "sim": {"time_scale": 0}},
            },
            {"id": "a", "weight": 1000, "llm": {"model": "sim-large", "sim": {"time_scale": 0}}},
        ],
        guardrails=[],
    )
    store = open_state("memory://")
    register_experiment(store, exp, actor="serve")
    view = StateView(store).start()
    app = create_app(ExperimentFile(experiments=[exp]), None, state=view, state_store=store)
    body = {"model": "exp_r", "messages": [{"role": "user", "content": "hi"}], "user": "u1"}
    try:
        with TestClient(app) as http:
            assert http.post("/v1/chat/completions", json=body).headers["x-abllm-variant"] == "a"
            r = http.post("/v1/admin/experiments/exp_r/kill", json={"reason": "incident"})
            assert r.status_code == 200
            served = http.post("/v1/chat/completions", json=body)
            assert served.status_code == 200 and served.headers["x-abllm-variant"] == "control"
            assert http.get("/v1/admin/experiments/exp_r/state").json()["killed"]
    finally:
        view.close()
        store.close()
