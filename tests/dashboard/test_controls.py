"""Controls on the experiment page: who may act, CSRF refusal, the required reason, the audit
row; and the guardrail bounds shown in the metric's own units with ratios as written."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from abllm.analysis import analyze
from abllm.config import ExperimentFile, loads_experiments
from abllm.dashboard import build_dashboard_router
from abllm.dashboard.results import bounds_text
from abllm.events import EventStore
from abllm.rollout import actions
from abllm.server.auth import SCOPE_KEY
from abllm.state import StateStore, open_state

from .conftest import CONFIG_YAML, FakeAppState, FakeGateway

BASE = "http://testserver"
PAUSE = "/dashboard/experiments/tone/actions/pause"


@pytest.fixture
def state(config: ExperimentFile) -> Iterator[StateStore]:
    s = open_state("memory://")
    actions.register_experiments(s, config.experiments, actor="serve")
    yield s
    s.close()


def _client(config: ExperimentFile, state: StateStore, scope: str | None) -> TestClient:
    """The dashboard with ``scope`` recorded the way ``abllm.server.auth`` records it."""
    app = FastAPI()
    app.include_router(build_dashboard_router(cache_ttl_s=0.0))
    app.state.abllm = FakeAppState(FakeGateway(config))
    app.state.abllm.state_store = state  # type: ignore[attr-defined]

    @app.middleware("http")
    async def _scope(request: Any, call_next: Any) -> Any:
        if scope is not None:
            request.scope[SCOPE_KEY] = scope
        return await call_next(request)

    return TestClient(app, base_url=BASE, follow_redirects=False)


def _audit(state: StateStore) -> list[str]:
    return [e.action for e in state.audit("tone")]


def test_non_admin_sees_disabled_controls_and_cannot_post(
    config: ExperimentFile, state: StateStore
) -> None:
    c = _client(config, state, "sdk")
    html = c.get("/dashboard/experiments/tone").text
    assert html.count("<button") == 5 and html.count(" disabled>") >= 5
    assert "Controls need an admin session" in html
    r = c.post(PAUSE, data={"reason": "x"}, headers={"Origin": BASE})
    assert r.status_code == 403 and _audit(state) == ["register"]


def test_cross_origin_and_headerless_posts_are_refused(
    config: ExperimentFile, state: StateStore
) -> None:
    c = _client(config, state, "admin")
    html = c.get("/dashboard/experiments/tone").text
    assert "Controls need" not in html and 'data-confirm="Pause tone?' in html
    evil = c.post(PAUSE, data={"reason": "x"}, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "cross-origin" in evil.text
    site = c.post(PAUSE, data={"reason": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    assert c.post(PAUSE, data={"reason": "x"}).status_code == 403
    assert _audit(state) == ["register"]


def test_reason_is_required_and_unknown_action_is_404(
    config: ExperimentFile, state: StateStore
) -> None:
    c = _client(config, state, "admin")
    r = c.post(PAUSE, data={"reason": "  "}, headers={"Origin": BASE})
    assert r.status_code == 400 and "reason" in r.text
    r = c.post("/dashboard/experiments/tone/actions/delete", headers={"Origin": BASE})
    assert r.status_code == 404 and "known: pause" in r.text
    assert _audit(state) == ["register"]


@pytest.mark.parametrize(
    ("action", "check"),
    [
        ("pause", lambda s: s.paused),
        ("kill", lambda s: s.killed),
        ("advance", lambda s: s.stage == 1),
    ],
)
def test_each_control_changes_the_state_with_its_reason(
    config: ExperimentFile, state: StateStore, action: str, check: Any
) -> None:
    c = _client(config, state, "admin")
    url = f"/dashboard/experiments/tone/actions/{action}"
    r = c.post(
        url, data={"reason": f"why {action} <now>"}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert r.status_code == 303 and r.headers["location"].endswith("/experiments/tone#controls")
    got = state.get("tone")
    assert got is not None and check(got)
    last = state.audit("tone")[-1]
    assert (last.actor, last.reason) == ("dashboard", f"why {action} <now>")
    page = c.get("/dashboard/experiments/tone").text
    assert f"why {action} &lt;now&gt;" in page


def test_resume_and_rollback_go_through_the_state_actions(
    config: ExperimentFile, state: StateStore
) -> None:
    c = _client(config, state, "admin")
    head = {"Origin": BASE}
    for action in ("advance", "rollback", "kill", "resume"):
        url = f"/dashboard/experiments/tone/actions/{action}"
        assert c.post(url, data={"reason": action}, headers=head).status_code == 303
    got = state.get("tone")
    assert got is not None and not got.killed and got.stage == 0
    assert _audit(state)[-4:] == ["advance", "rollback", "kill", "resume"]
    # Rolling back below the first stage is a conflict the page explains, not a 500.
    r = c.post("/dashboard/experiments/tone/actions/rollback", data={"reason": "r"}, headers=head)
    assert r.status_code in (303, 409)


def test_guardrail_ratio_bounds_read_as_written_in_the_metric_unit(
    store: EventStore,
) -> None:
    yaml = CONFIG_YAML.replace(
        "      - {metric: error_rate, max: 0.5, min_units: 10}",
        "      - {metric: error_rate, max_ratio: 1.1, min_units: 10}\n"
        "      - {metric: p95_latency_ms, max_ratio: 1.2, max: 5000, min_units: 10}",
    )
    config = loads_experiments(yaml)
    exp = config.get("tone")
    res = analyze(exp, store)
    p95 = res.metrics["p95_latency_ms"]
    ctl = p95.arms["control"].mean
    text = bounds_text(exp.guardrails[1], p95, ctl)
    assert text.startswith("≤ 1.2× control")
    assert f"(= {ctl * 1.2:.0f} ms)" in text and "≤ 5000 ms" in text
    err = res.metrics["error_rate"]
    text = bounds_text(exp.guardrails[0], err, err.arms["control"].mean)
    assert text.startswith("≤ 1.1× control") and "110.0%" not in text
    assert f"(= {err.arms['control'].mean * 110:.1f}%)" in text
    assert "control" in bounds_text(exp.guardrails[0], err, math.nan)


def test_list_has_stage_age_badges_and_filters_by_status(
    config: ExperimentFile, state: StateStore, store: EventStore
) -> None:
    from .conftest import FakeAppState, FakeGateway

    app = FastAPI()
    app.include_router(build_dashboard_router(cache_ttl_s=0.0))
    app.state.abllm = FakeAppState(FakeGateway(config), store)
    app.state.abllm.state_store = state  # type: ignore[attr-defined]
    c = TestClient(app)
    # The stage's weights (80/10/10) against data split 2:1:1: a sample ratio mismatch.
    html = c.get("/dashboard").text
    row = html[html.index('data-status="running"') :]
    row = row[: row.index("</tr>")]
    assert "stage 1/2 (canary)" in row and ">SRM<" in row and "INVALID" in row
    assert re.search(r'data-label="Age">\d+ d \d+ h<', row)
    actions.kill(state, "tone", actor="ops", reason="r")
    killed = c.get("/dashboard?status=killed").text
    assert "/experiments/tone" in killed and "/experiments/empty_exp" not in killed
    running = c.get("/dashboard?status=running").text
    assert '/experiments/tone"' not in running and "/experiments/empty_exp" in running
    assert 'class="current">running</a>' in running
