"""Runtime state on the dashboard: kill switch, stage, paused arms, audit log, failures; and the
router inside the real server app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from abllm.assign import RuntimeState
from abllm.config import ExperimentFile
from abllm.dashboard import build_dashboard_router
from abllm.events import Event, EventStore, open_store
from abllm.gateway import InMemoryStateView
from abllm.rollout import actions
from abllm.state import StateStore, StateView, open_state, replace

from .conftest import Client


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def state_store(config: ExperimentFile) -> Iterator[StateStore]:
    """A memory state store: both experiments registered, ``tone`` killed, ``turbo`` paused."""
    s = open_state("memory://")
    actions.register_experiments(s, config.experiments, actor="serve")
    s.apply(
        "tone",
        lambda st: replace(st, paused_variants=("turbo",)),
        actor="controller",
        action="pause_variant",
        reason="guardrail error_rate breached",
    )
    actions.kill(s, "tone", actor="ops<alice>", reason="<b>latency</b> spike")
    yield s
    s.close()


def test_state_view_shows_kill_stage_paused_arms_and_audit(
    client: Client, config: ExperimentFile, store: EventStore, state_store: StateStore
) -> None:
    view = StateView(state_store)
    assert view.refresh()
    c = client(config, store, state=view)

    text = _text(c.get("/dashboard").text)
    assert "killed" in text
    assert "stage 1/2 (canary)" in text
    assert "paused arms: turbo" in text

    r = c.get("/dashboard/experiments/tone")
    assert r.status_code == 200
    html, text = r.text, _text(r.text)
    assert "KILLED: everyone gets control" in text
    assert "<li class='current'><strong>canary</strong>" in html
    assert "<s title='paused'>" not in html  # the list page strikes paused arms, not this one
    assert "paused</span>" in html  # the results table tags the paused arm
    # The audit log, newest first, everything escaped.
    audit = html[html.index('id="audit"') :]
    rows = re.findall(r"<tr><td>", audit)
    assert len(rows) == 3  # register, pause_variant, kill
    assert audit.index(">kill<") < audit.index(">pause_variant<") < audit.index(">register<")
    assert "ops&lt;alice&gt;" in audit and "&lt;b&gt;latency&lt;/b&gt; spike" in audit
    assert "<b>latency</b>" not in html
    assert "killed: false → true" in audit
    # The canary stage's weights (80/10/10) are what the SRM check compares the 2:1:1 data to.
    assert "mismatch" in text
    assert "INVALID" in text


def test_state_store_attribute_is_read_too(
    client: Client, config: ExperimentFile, state_store: StateStore
) -> None:
    c = client(config, None, state_store=state_store)
    text = _text(c.get("/dashboard/experiments/tone").text)
    assert "KILLED" in text and "pause_variant" in text


def test_plain_gateway_state_reader(client: Client, config: ExperimentFile) -> None:
    view = InMemoryStateView()
    view.set("tone", RuntimeState(paused_variants=frozenset({"warm"}), traffic=25.0, version=3))
    view.set("empty_exp", RuntimeState(killed=True, version=1))
    c = client(config, None, state=view)
    html = c.get("/dashboard").text
    assert "<s title='paused'>warm</s>" in html
    assert "traffic 25%" in html
    assert 'class="tag bad">killed<' in html
    text = _text(c.get("/dashboard/experiments/tone").text)
    assert "paused arms warm" in text
    assert "no state backend, so no audit log" in text


class DownState:
    """A state backend that cannot be reached."""

    url, kind = "memory://", "memory"

    def state(self, experiment_id: str) -> Any:
        raise ConnectionError("state <backend> down")

    def get(self, experiment_id: str) -> Any:
        raise ConnectionError("state <backend> down")

    def audit(self, experiment_id: str, limit: int = 100) -> Any:
        raise ConnectionError("state <backend> down")


def test_state_backend_down_is_shown_not_a_500(
    client: Client, config: ExperimentFile, store: EventStore
) -> None:
    c = client(config, store, state=DownState())
    assert c.get("/dashboard").status_code == 200
    r = c.get("/dashboard/experiments/tone")
    assert r.status_code == 200
    assert "audit log unavailable: state &lt;backend&gt; down" in r.text
    assert "no runtime state recorded" in r.text


def test_router_in_the_server_app_sees_events_just_emitted(
    config: ExperimentFile, events: list[Event], tmp_path: Path
) -> None:
    from abllm.server import create_app

    store = open_store("duckdb:///:memory:")
    store.append(events)
    try:
        app = create_app(config, store, spool_dir=tmp_path / "spool")
        app.include_router(build_dashboard_router())
        with TestClient(app) as c:
            app.state.abllm.pipeline.emit(
                Event(type="exposure", experiment_id="empty_exp", unit_id="u1", variant_id="b")
            )
            html = c.get("/dashboard").text
            row = html[html.index('href="/dashboard/experiments/empty_exp"') :]
            row = row[: row.index("</tr>")]
            assert '<td data-label="Units">1</td>' in row  # flushed before the analysis
            r = c.get("/dashboard/experiments/tone")
            assert r.status_code == 200 and "<svg" in r.text
    finally:
        store.close()


def test_advance_is_only_called_automatic_while_a_controller_holds_the_lease(
    client: Client, config: ExperimentFile, state_store: StateStore
) -> None:
    from abllm.state.lease import controller_lease, leases_for

    c = client(config, None, state_store=state_store)
    text = _text(c.get("/dashboard/experiments/tone").text)
    assert "advance: automatic, but no controller is running" in text
    assert "abllm serve" in text

    leases_for(state_store).acquire(controller_lease("tone"), "host-1:4242", ttl_s=60)
    text = _text(c.get("/dashboard/experiments/tone").text)
    assert "advance: automatic; guardrails checked every" in text
    assert "by the controller in host-1:4242" in text
