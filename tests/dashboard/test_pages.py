"""The dashboard pages over an in-memory DuckDB store: list, results, errors, escaping, assets."""

from __future__ import annotations

import re
from typing import Any

from abllm.analysis import analyze
from abllm.config import ExperimentFile
from abllm.events import EventStore

from .conftest import Client


def _text(html: str) -> str:
    """Visible text, tags dropped and whitespace collapsed (for content assertions)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_overview_lists_every_experiment_with_units_and_recommendation(
    client: Client, config: ExperimentFile, store: EventStore
) -> None:
    res = analyze(config.get("tone"), store)
    r = client(config, store).get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'href="/dashboard/experiments/tone"' in html
    assert 'href="/dashboard/experiments/empty_exp"' in html
    text = _text(html)
    total = sum(v.units for v in res.variants.values())
    assert total == 480
    assert "480" in text
    decision = res.recommendation.decision.value.replace("_", " ")
    assert decision in text
    assert "no data yet" in text  # empty_exp has no events
    assert "running" in text
    assert "control" in text and "warm" in text and "turbo" in text


def test_detail_page_has_seed_001_results_view(
    client: Client, config: ExperimentFile, store: EventStore
) -> None:
    exp = config.get("tone")
    res = analyze(exp, store)
    r = client(config, store).get("/dashboard/experiments/tone")
    assert r.status_code == 200
    html, text = r.text, _text(r.text)
    # Summary table: variant, traffic share, primary metric with CI, latency, cost, p-values.
    assert 'class="results summary"' in html
    for v in res.variants.values():
        assert f"{v.share:.0%}" in text
    assert "(primary)" in text and "p-value (seq.)" in text
    # Every metric: mean, CI, lift with CI, fixed and sequential p, chance to win.
    rating = res.metrics["rating"]
    warm = rating.comparisons["warm"]
    assert f"{warm.rel_lift * 100:+.1f}%" in text
    assert f"{warm.rel_ci[0] * 100:+.1f}% to {warm.rel_ci[1] * 100:+.1f}%" in text
    assert f"{warm.chance_to_win:.0%}" in text
    assert "Lift vs control (CI)" in text and "P(win)" in text
    # warm is clearly better on rating, turbo clearly worse: coloured arrows.
    assert warm.significant and rating.comparisons["turbo"].significant
    assert '<span class="arrow up sig"' in html
    assert '<span class="arrow down sig"' in html
    # Lower latency is better: turbo's latency arrow points up.
    lat = res.metrics["latency_ms"].comparisons["turbo"]
    assert lat.significant and lat.diff < 0
    # SRM, guardrails, recommendation with its reason.
    assert "Sample ratio check" in text and "χ² p" in text
    assert "error_rate" in text and ("holding" in text or "breached" in text)
    assert "Recommendation" in text
    assert _text(res.recommendation.reason).strip()[:40] in text
    # Cumulative daily chart as inline SVG: one band and one line per treatment.
    assert "<svg" in html and 'role="img"' in html
    daily = html[html.index('<section id="daily">') :]
    svg = daily[daily.index("<svg") : daily.index("</svg>")]
    assert svg.count('class="band"') == 2
    assert svg.count('class="line"') == 2
    assert "nan" not in svg.lower()
    assert 'id="daily-numbers"' in html
    # Rollout plan from the YAML; no runtime state and no audit backend.
    assert "canary" in text and "expand" in text
    assert "no runtime state recorded" in text
    assert "no audit log" in text


def test_no_store_renders_no_data_yet(client: Client, config: ExperimentFile) -> None:
    c = client(config, None)
    r = c.get("/dashboard")
    assert r.status_code == 200
    assert "no data yet" in r.text and "--store" in r.text
    r = c.get("/dashboard/experiments/tone")
    assert r.status_code == 200
    assert "no data yet" in r.text
    assert "<svg" not in r.text


class BrokenStore:
    """A store whose queries fail, as a dropped database connection would."""

    dialect = "duckdb"

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        raise RuntimeError("connection to <db> lost")

    def append(self, events: Any) -> int:
        return 0

    def count(self, experiment_id: str | None = None) -> int:
        return 0

    def close(self) -> None:
        pass


def test_analysis_error_is_shown_not_a_500(client: Client, config: ExperimentFile) -> None:
    c = client(config, BrokenStore())
    r = c.get("/dashboard/experiments/tone")
    assert r.status_code == 200
    assert "Analysis failed" in r.text
    assert "connection to &lt;db&gt; lost" in r.text
    r = c.get("/dashboard")
    assert r.status_code == 200
    assert "analysis error" in r.text


def test_unknown_experiment_is_a_404_page(client: Client, config: ExperimentFile) -> None:
    r = client(config, None).get("/dashboard/experiments/nope%3Cx%3E")
    assert r.status_code == 404
    assert "No experiment nope&lt;x&gt;" in r.text
    assert 'href="/dashboard/experiments/tone"' in r.text


def test_everything_from_config_and_data_is_escaped(
    client: Client, config: ExperimentFile, store: EventStore
) -> None:
    for path in ("/dashboard", "/dashboard/experiments/tone"):
        html = client(config, store).get(path).text
        assert "<b>v2</b>" not in html
        assert "<script>alert" not in html
        assert "Support tone &lt;b&gt;v2&lt;/b&gt; &amp; friends" in html
    assert "&lt;script&gt;alert(&#x27;h&#x27;)&lt;/script&gt;" in html  # hypothesis


def test_static_assets_are_served_offline(
    client: Client, config: ExperimentFile, store: EventStore
) -> None:
    c = client(config, store)
    css = c.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = c.get("/dashboard/static/dashboard.js")
    assert js.status_code == 200 and "setInterval" in js.text
    assert c.get("/dashboard/static/../router.py").status_code == 404
    assert c.get("/dashboard/static/secret.txt").status_code == 404
    for path in ("/dashboard", "/dashboard/experiments/tone"):
        html = c.get(path).text
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert refs and all(ref.startswith("/dashboard") for ref in refs), refs
    assert c.get("/dashboard/", follow_redirects=False).status_code == 307
