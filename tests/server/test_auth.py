"""API keys: sdk and admin scopes, every route but /healthz needs one, browsers log in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient

from abllm.config import load_experiments
from abllm.errors import ValidationError
from abllm.rollout import register_experiments
from abllm.server import create_app
from abllm.server.auth import KeyConfig, check_bind, keys_from_env, static_key_name
from abllm.state import StateStore, open_state
from abllm.state.keycache import KeyCache
from abllm.state.keys import create_key, keys_for, revoke_key

ROOT = Path(__file__).resolve().parents[2]
SDK = {"Authorization": "Bearer s3cret"}
ADMIN = {"Authorization": "Bearer adm1n"}


@pytest.fixture
def state() -> Iterator[StateStore]:
    s = open_state("memory://")
    yield s
    s.close()


@pytest.fixture
def client(state: StateStore) -> Iterator[TestClient]:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    register_experiments(state, config.experiments, actor="test")
    app = create_app(
        config,
        state_store=state,
        api_keys=["s3cret"],
        admin_keys=["adm1n"],
        managed_keys=KeyCache(keys_for(state), ttl_s=0),
    )
    with TestClient(app) as c:
        yield c


BODY = {"model": "exp_summarize_v2", "user": "u1", "messages": [{"role": "user", "content": "hi"}]}


def test_v1_routes_need_a_key(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_bearer_and_x_api_key_pass(client: TestClient) -> None:
    assert client.get("/v1/models", headers=SDK).status_code == 200
    assert client.get("/v1/models", headers={"X-Api-Key": "s3cret"}).status_code == 200


def test_issue_case_pages_docs_and_metrics_need_a_key(client: TestClient) -> None:
    # With --api-key set, /dashboard, /metrics, /docs and /openapi.json answered without one.
    for path in ("/dashboard", "/metrics", "/docs", "/openapi.json", "/v1/no-such-route"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=SDK).status_code != 401, path
    assert client.get("/healthz").status_code == 200


def test_admin_routes_refuse_the_sdk_key(client: TestClient) -> None:
    path = "/v1/admin/experiments/exp_summarize_v2/kill?wait_s=0"
    r = client.post(path, json={"reason": "x"}, headers=SDK)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.post("/dashboard/x", headers=SDK).status_code == 403  # dashboard controls
    assert client.post(path, json={"reason": "x"}, headers=ADMIN).status_code == 200


def test_audit_names_the_key_not_the_declared_actor(client: TestClient, state: StateStore) -> None:
    # A caller-declared actor made the audit log spoofable.
    base = "/v1/admin/experiments/exp_summarize_v2"
    r = client.post(
        f"{base}/kill?wait_s=0",
        json={"reason": "x", "actor": "alice"},
        headers={**ADMIN, "X-Abllm-Actor": "bob"},
    )
    assert r.status_code == 200
    audit = client.get(f"{base}/audit", headers=ADMIN).json()["audit"]
    assert audit[-1]["actor"] == static_key_name("adm1n", "admin")
    assert "adm1n" not in str(audit) and "alice" not in str(audit)


def test_managed_keys_pass_until_revoked(client: TestClient, state: StateStore) -> None:
    record, key = create_key(keys_for(state), "admin", "ops")
    headers = {"Authorization": f"Bearer {key}"}
    state_url = "/v1/admin/experiments/exp_summarize_v2/state"
    # ttl_s=0: a request starts a background refresh; the new key counts within moments.
    assert _eventually(lambda: client.get(state_url, headers=headers).status_code == 200)
    base = "/v1/admin/experiments/exp_summarize_v2"
    assert client.post(f"{base}/kill?wait_s=0", headers=headers).status_code == 200
    audit = client.get(f"{base}/audit", headers=headers).json()["audit"]
    assert audit[-1]["actor"] == "ops (" + record.prefix + ")" and key not in str(audit)
    revoke_key(keys_for(state), "ops")
    assert _eventually(lambda: client.get("/v1/models", headers=headers).status_code == 401)


def _eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_metrics_takes_a_bearer_key_or_is_opened(client: TestClient) -> None:
    assert client.get("/metrics", headers=SDK).status_code == 200
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    with TestClient(create_app(config, api_keys=["k"], metrics_open=True)) as c:
        assert c.get("/metrics").status_code == 200
        assert c.get("/v1/models").status_code == 401


def test_browser_login_sets_a_signed_strict_cookie(client: TestClient) -> None:
    page = client.get("/dashboard", headers={"Accept": "text/html"})
    assert page.status_code == 401 and '<form method="post" action="/login">' in page.text
    bad = client.post("/login", data={"key": "nope", "next": "/dashboard"})
    assert bad.status_code == 401 and "not valid" in bad.text
    ok = client.post(
        "/login", data={"key": "s3cret", "next": "//evil.example/"}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"  # no open redirect
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret" not in cookie
    assert client.get("/dashboard").status_code == 200  # the client keeps the cookie
    assert client.post("/v1/admin/experiments/exp_summarize_v2/kill").status_code == 403
    client.cookies.set("abllm_session", cookie.split(";")[0].split("=", 1)[1][:-2] + "xx")
    assert client.get("/v1/models").status_code == 401  # a tampered signature
    client.get("/logout")


def test_keyless_server_is_open_and_admin() -> None:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    with TestClient(create_app(config)) as c:
        assert c.get("/v1/models").status_code == 200
        assert c.get("/metrics").status_code == 200


def test_keys_from_env_and_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ABLLM_API_KEYS", "a, b,,")
    assert keys_from_env(["c"]) == ("c", "a", "b")
    monkeypatch.setenv("ABLLM_ADMIN_KEYS", "z")
    (tmp_path / "sdk").write_text("# ci\nfile-key\n\n")
    keys = KeyConfig.gather(["c"], [], tmp_path / "sdk")
    assert keys == KeyConfig(("c", "file-key", "a", "b"), ("z",))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValidationError, match="holds no key"):
        KeyConfig.gather(admin_key_file=tmp_path / "empty")


def test_bind_refused_beyond_loopback_without_a_key() -> None:
    assert check_bind("127.0.0.1", keyed=False, insecure=False) is None
    assert check_bind("::1", keyed=False, insecure=False) is None
    assert check_bind("0.0.0.0", keyed=True, insecure=False) is None
    with pytest.raises(ValidationError, match="--admin-key-file"):
        check_bind("0.0.0.0", keyed=False, insecure=False)
    assert "warning" in (check_bind("0.0.0.0", keyed=False, insecure=True) or "")


def test_openai_client_sends_its_key_as_bearer() -> None:
    # The official SDK's api_key is what the gateway checks: no custom header needed.
    assert "Authorization" in openai.OpenAI(api_key="k", base_url="http://x/v1").auth_headers


def test_per_key_rate_limit_answers_429_with_retry_after() -> None:
    config = load_experiments(ROOT / "examples" / "summarize.yaml")
    app = create_app(config, api_keys=["a", "b"], rate_limit=2)
    with TestClient(app) as c:
        codes = [
            c.get("/v1/models", headers={"Authorization": "Bearer a"}).status_code for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        r = c.get("/v1/models", headers={"Authorization": "Bearer a"})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "rate_limited"
        # Buckets are per key: another key is unaffected.
        assert c.get("/v1/models", headers={"Authorization": "Bearer b"}).status_code == 200


def test_token_bucket_refills_at_the_rate() -> None:
    from abllm.server.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(1, burst=2, clock=lambda: now[0])
    assert [limiter.take("k") for _ in range(2)] == [0, 0]
    assert limiter.take("k") == pytest.approx(1.0)
    now[0] = 0.5
    assert limiter.take("k") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.take("k") == 0
    with pytest.raises(ValidationError, match="above 0"):
        RateLimiter(0)


def test_login_from_another_origin_is_refused(client: TestClient) -> None:
    r = client.post(
        "/login",
        data={"key": "s3cret"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 401 and "set-cookie" not in r.headers
    ok = client.post(
        "/login",
        data={"key": "s3cret"},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
