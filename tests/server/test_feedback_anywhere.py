"""Feedback posted to a process other than the one that served the request, the instant the
answer arrives: attributed from the signed trace id, or (a caller-chosen id) from the store once
the serving process flushed; counted for the variant that served."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.serve_process import GUARD_CONFIG, serving

from abllm.events import open_store

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(pg_url: str, unique_name: str) -> Iterator[str]:
    import psycopg

    yield f"{pg_url}?schema={unique_name}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')


def _post(
    port: int, path: str, body: object, headers: dict[str, str]
) -> tuple[int, dict[str, str], dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def _chat(port: int, unit: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    body = {"model": "exp_guard", "messages": [{"role": "user", "content": "hi"}], "user": unit}
    _, got, _ = _post(port, "/v1/chat/completions", body, headers or {})
    lower = {k.lower(): v for k, v in got.items()}
    return lower["x-abllm-trace-id"], lower["x-abllm-variant"]


def test_feedback_to_another_process_is_never_a_404(tmp_path: Path, pg_store: str) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(GUARD_CONFIG)
    served: dict[str, str] = {}
    with serving(cfg, pg_store, tmp_path, "a") as a, serving(cfg, pg_store, tmp_path, "b") as b:
        for i in range(10):
            trace_id, variant = _chat(a, f"user-{i}")
            assert trace_id.startswith("t1.")  # made by the gateway: signed
            status, _, answer = _post(b, "/v1/feedback", {"trace_id": trace_id, "rating": 4}, {})
            assert status == 200 and answer["recorded"] is True, answer
            served[f"user-{i}"] = variant
        # A caller-chosen trace id carries nothing: B finds it in the store once A flushed.
        trace_id, variant = _chat(a, "user-own", {"X-Abllm-Trace-Id": "order-4711"})
        assert trace_id == "order-4711"  # the header is a contract: kept as sent
        status, _, answer = _post(b, "/v1/feedback", {"trace_id": trace_id, "rating": 2}, {})
        assert status == 200 and answer["recorded"] is True, answer
        served["user-own"] = variant
        status, _, answer = _post(
            b, "/v1/feedback", {"trace_id": "nobody-served-this", "rating": 1}, {}
        )
        assert status == 404 and "trace_id" in json.dumps(answer)
    store = open_store(pg_store)
    try:
        rows = store.query("SELECT unit_id, variant_id FROM abllm_events WHERE type = 'feedback'")
    finally:
        store.close()
    assert dict(rows) == served  # each feedback counted for the variant that served the unit
