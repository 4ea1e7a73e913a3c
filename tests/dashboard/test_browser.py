"""The dashboard in a real browser: Debian's chromium driven by Playwright against a server
(``create_app`` under uvicorn on 127.0.0.1) with a seeded DuckDB store and a state store.

Checks what only a browser can: the table's numbers equal the results API, every chart renders
with a size, pausing with a reason changes the state and writes an audit row, no request leaves
127.0.0.1, and nothing overflows sideways at 390 px. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from abllm.analysis import MetricResult
from abllm.analysis.report import fmt_value
from abllm.config import ExperimentFile, loads_experiments
from abllm.events import open_store
from abllm.rollout import actions
from abllm.state import StateStore, StateView, open_state

from .conftest import CONFIG_YAML, make_events

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing under CI (.ci/run installs it)")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")

#: Guardrails written as ratios: their bounds must read "1.2× control", not "1 ms".
GUARDED_YAML = (
    CONFIG_YAML.replace(
        "{id: control, control: true, weight: 2, llm: {provider: sim, model: m}}",
        "{id: control, control: true, weight: 2, llm: {provider: sim, model: m, "
        'prompt_version: v1, system_prompt: "You are a support agent.\\nBe brief."}}',
    )
    .replace(
        "{id: warm, llm: {provider: sim, model: m}}",
        "{id: warm, llm: {provider: sim, model: m, prompt_version: v2, "
        'system_prompt: "You are a warm support agent.\\nBe brief and kind."}}',
    )
    .replace(
        "      - {metric: error_rate, max: 0.5, min_units: 10}",
        "      - {metric: error_rate, max_ratio: 1.1, min_units: 10}\n"
        "      - {metric: p95_latency_ms, max_ratio: 1.2, min_units: 10}",
    )
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """The base URL and the state store of the running server."""

    def __init__(self, base: str, state: StateStore, config: ExperimentFile) -> None:
        self.base, self.state, self.config = base, state, config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import uvicorn

    from abllm.server import create_app

    config = loads_experiments(GUARDED_YAML)
    store = open_store("duckdb:///:memory:")
    store.append(make_events(days=2))  # under two days of data: hourly points
    state = open_state("memory://")
    actions.register_experiments(state, config.experiments, actor="serve")
    actions.advance(state, "tone", actor="ops", reason="canary looks fine")
    actions.rollback(state, "tone", actor="controller", reason="p95 latency above 1.2x")
    view = StateView(state)
    view.refresh()
    spool = tmp_path_factory.mktemp("spool")
    app = create_app(config, store, state=view, state_store=state, spool_dir=spool)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", state, config)
    finally:
        server.should_exit = True
        thread.join(10)
        view.close()
        state.close()
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def offline(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A browser context whose requests must stay on 127.0.0.1; others are aborted and kept."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    left: list[str] = []

    def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    ctx.route("**/*", guard)
    yield ctx, left
    ctx.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _info(doc: dict[str, Any], name: str) -> MetricResult:
    i = doc["metric_info"][name]
    return MetricResult(
        name, i["kind"], i["role"], i["direction"], i["builtin"], i["label"], {}, {}
    )


def test_detail_page_matches_the_api_and_draws_every_chart(
    served: Served, offline: tuple[Any, list[str]]
) -> None:
    ctx, left = offline
    page = ctx.new_page()
    page.goto(f"{served.base}/dashboard/experiments/tone")
    with urlopen(f"{served.base}/v1/experiments/tone/results", timeout=30) as r:
        doc = json.load(r)

    rows = page.locator("table.summary tbody tr")
    assert rows.count() == len(doc["variants"]) == 3
    for variant, v in doc["variants"].items():
        row = page.locator(f'table.summary tr[data-variant="{variant}"]')
        assert row.locator("td").nth(2).inner_text() == f"{v['units']:,}"
        for name in ("rating", "thumbs_up", "p95_latency_ms", "cost_per_request", "error_rate"):
            cell = row.locator(f'[data-metric="{name}"] .v')
            expected = fmt_value(_info(doc, name), doc["metrics"][name][variant]["mean"])
            assert cell.inner_text() == expected, (variant, name)

    for chart in ("forest", "cumulative", "traffic", "cost", "latency"):
        svg = page.locator(f'figure[data-chart="{chart}"] svg')
        assert svg.count() == 1, chart
        box = svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80, chart
        assert svg.locator("line, polyline, rect, circle").count() > 3, chart
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator(f'figure[data-chart="{chart}"]').screenshot(
            path=str(ARTIFACTS / f"chart-{chart}.png")
        )
    # Hourly when the data spans under two days: many points, not one dot per day.
    assert page.locator('figure[data-chart="cumulative"] circle.dot').count() > 10
    # Stage changes from the audit log are marked on the traffic chart.
    assert page.locator('figure[data-chart="traffic"] g.marker').count() >= 2

    bounds = page.locator("table.guardrails").inner_text()
    assert "≤ 1.2× control" in bounds and "≤ 1.1× control" in bounds
    assert "110.0%" not in bounds and "\t1 ms" not in bounds
    health = page.locator("section#health").inner_text()
    assert "rollback by controller: p95 latency above 1.2x" in health
    assert "sample ratio" in health.lower() and "not trustworthy" in health
    warm = page.locator('.variant-config[data-variant="warm"]')
    assert "prompt v2" in warm.inner_text()
    turbo = page.locator('.variant-config[data-variant="turbo"] dd.differs')
    assert "m2" in turbo.all_inner_texts()  # turbo's model differs from control's
    assert warm.locator(".diff .add").first.inner_text() == "+You are a warm support agent."
    assert page.locator('.variant-config[data-variant="warm"] .diff .del').count() == 2
    _shot(page, "detail-1400")
    for section in ("summary", "health", "variants", "controls"):
        page.locator(f"section#{section}").screenshot(path=str(ARTIFACTS / f"{section}.png"))
    assert left == []


def test_refresh_swaps_the_figures_and_keeps_the_scroll_position(
    served: Served, offline: tuple[Any, list[str]]
) -> None:
    ctx, left = offline
    page = ctx.new_page()
    page.goto(f"{served.base}/dashboard/experiments/tone")
    page.evaluate("window.scrollTo(0, 1500)")
    page.evaluate("document.querySelector('#daily-numbers').open = true")
    before = page.locator("footer.foot").inner_text()
    time.sleep(1.1)  # the footer names the second the page was rendered
    assert page.evaluate("window.abllmRefresh()") is True
    assert page.locator("footer.foot").inner_text() != before
    assert page.evaluate("window.scrollY") == 1500
    assert page.evaluate("document.querySelector('#daily-numbers').open") is True
    # While a reason is being typed the figures stay put.
    page.locator('form.control[action$="/actions/kill"] input').fill("typing")
    assert page.evaluate("window.abllmRefresh()") is False
    assert left == []


def test_pause_with_a_reason_changes_the_state_and_writes_an_audit_row(
    served: Served, offline: tuple[Any, list[str]]
) -> None:
    ctx, left = offline
    page = ctx.new_page()
    page.goto(f"{served.base}/dashboard/experiments/tone#controls")
    form = page.locator('form.control[action$="/actions/pause"]')
    form.locator("input[name=reason]").fill("error spike <seen> on the pager")
    questions: list[str] = []

    def accept(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    with page.expect_navigation():
        form.locator("button").click()
    assert questions and "Pause tone?" in questions[0]
    state = served.state.get("tone")
    assert state is not None and state.paused
    last = served.state.audit("tone", limit=1)[-1]
    assert (last.action, last.actor, last.reason) == (
        "pause",
        "dashboard",
        "error spike <seen> on the pager",
    )
    assert "error spike &lt;seen&gt; on the pager" in page.content()
    _shot(page, "after-pause-1400")
    actions.resume(served.state, "tone", actor="test", reason="undo the pause")
    assert left == []


def test_readable_at_390_px_without_horizontal_overflow(
    served: Served, offline: tuple[Any, list[str]]
) -> None:
    ctx, left = offline
    page = ctx.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/dashboard", "list-390"), ("/dashboard/experiments/tone", "detail-390")):
        page.goto(served.base + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        _shot(page, name)
    page.screenshot(path=str(ARTIFACTS / "detail-390-top.png"))
    for section in ("summary", "forest", "controls"):
        page.locator(f"section#{section}").screenshot(path=str(ARTIFACTS / f"{section}-390.png"))
    assert left == []
