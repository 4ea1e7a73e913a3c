"""Every route of the app, with no key, an sdk key and an admin key.

The routes are read from the app itself, so a route added later is checked too: it needs a key
(401 without one) unless it is listed in ``OPEN_PATHS``, and an admin route refuses sdk keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from abllm.config import load_experiments
from abllm.gateway import CHAT_PATH
from abllm.rollout import register_experiments
from abllm.server import create_app
from abllm.server.auth import OPEN_PATHS, required_scope
from abllm.state import open_state

ROOT = Path(__file__).resolve().parents[2]
SDK_ONLY = {"Authorization": "Bearer sdk-key"}
ADMIN = {"Authorization": "Bearer admin-key"}
#: The sdk scope as the docs list it: these must pass with an sdk key.
SDK_ROUTES = {
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("POST", "/v1/events"),
    ("POST", "/v1/feedback"),
    ("GET", "/v1/config"),
    ("GET", "/v1/experiments/{experiment_id}/results"),
}


def _walk(routes: list[Any]) -> Iterator[Route]:
    """Routes, descending into included routers (FastAPI >= 0.165 wraps each one; none of
    ours is included with an extra prefix, the routers carry their own)."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes)


def _app_routes() -> list[tuple[str, str]]:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    state = open_state("memory://")
    app = create_app(config, state_store=state, api_keys=["k"])
    found = {("POST", CHAT_PATH)}  # the raw hot path, dispatched before the router
    for route in _walk(app.routes):
        found |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    state.close()
    return sorted(found)


ROUTES = _app_routes()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    state = open_state("memory://")
    register_experiments(state, config.experiments, actor="test")
    app = create_app(config, state_store=state, api_keys=["sdk-key"], admin_keys=["admin-key"])
    with TestClient(app) as c:
        yield c
    state.close()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "exp_summarize_v2", path)


def test_the_table_holds_the_documented_routes() -> None:
    assert set(ROUTES) >= SDK_ROUTES
    assert any(p.startswith("/v1/admin/") for _, p in ROUTES)
    assert ("GET", "/dashboard") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=lambda x: str(x))
def test_every_route_needs_a_key_of_its_scope(client: TestClient, method: str, path: str) -> None:
    url = _concrete(path) + ("?wait_s=0" if path.startswith("/v1/admin/") else "")
    none = client.request(method, url)
    if path in OPEN_PATHS:
        assert none.status_code not in (401, 403)
        return
    assert none.status_code == 401, f"{method} {path} answers without a key"
    assert none.json()["error"]["code"] == "unauthorized"
    sdk = client.request(method, url, headers=SDK_ONLY)
    if required_scope(path, method, metrics_open=False) == "admin":
        assert sdk.status_code == 403, f"{method} {path} takes an sdk key"
    else:
        assert sdk.status_code not in (401, 403), f"{method} {path} refuses an sdk key"
    assert client.request(method, url, headers=ADMIN).status_code not in (401, 403)
    if (method, path) in SDK_ROUTES:
        assert required_scope(path, method, metrics_open=False) == "sdk"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PUT"])
def test_unknown_paths_are_checked_before_routing(client: TestClient, method: str) -> None:
    for path in ("/v1/nope", "/v1/admin/nope", "/anything"):
        assert client.request(method, path).status_code == 401
    assert client.request(method, "/v1/admin/nope", headers=SDK_ONLY).status_code == 403
