"""The two pages: the experiment list and one experiment's results, rollout and audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from abllm.analysis import Decision, ExperimentResult
from abllm.config import Experiment
from abllm.dashboard.chart import daily_chart, daily_table
from abllm.dashboard.html import badge, duration, empty, error_box, esc, tag, when
from abllm.dashboard.results import (
    guardrails_section,
    metrics_table,
    recommendation_box,
    srm_section,
    summary_table,
    warnings_section,
)
from abllm.dashboard.router import PREFIX
from abllm.dashboard.runtime import (
    actions_hint,
    audit_section,
    plan_section,
    runtime_section,
    runtime_tags,
    status_of,
)
from abllm.dashboard.sources import Runtime, Sources

NO_STORE = "no data yet: this server has no event store (start it with --store)"


def experiment_href(experiment_id: str) -> str:
    """The link to one experiment's page."""
    return f"{PREFIX}/experiments/{quote(experiment_id, safe='')}"


def _variants(experiment: Experiment, rt: Runtime) -> str:
    out = []
    for v in experiment.variants:
        text = esc(v.id)
        if v.control:
            text = f"<strong title='control'>{text}</strong>"
        if v.id in rt.paused_variants:
            text = f"<s title='paused'>{text}</s>"
        out.append(text)
    return ", ".join(out)


def _status(experiment: Experiment, rt: Runtime) -> str:
    status = status_of(experiment, rt)
    kind = {"killed": "bad", "paused": "warn", "stopped": "warn", "running": "good"}.get(status, "")
    return tag(status, kind)


def overview_body(src: Sources) -> str:
    """Every experiment with its status, units so far, recommendation and runtime state."""
    experiments = src.experiments()
    if not experiments:
        return "<h1>Experiments</h1>" + empty("this server serves no experiments")
    rows = []
    for exp in experiments:
        rt = src.runtime(exp.id)
        outcome = src.analysis(exp)
        if outcome is None:
            units, rec = f'<span class="muted">{esc(NO_STORE)}</span>', ""
        elif outcome.value is None:
            units = "–"
            rec = f'<span class="badge bad" title="{esc(outcome.error)}">analysis error</span>'
        else:
            res = outcome.value
            total = sum(v.units for v in res.variants.values())
            units = f"{total:,}" if total else '<span class="muted">no data yet</span>'
            rec = badge(res.recommendation.decision, res.recommendation.variant)
        name = esc(exp.name) if exp.name else '<span class="muted">–</span>'
        rows.append(
            f'<tr><td><a href="{esc(experiment_href(exp.id))}">{esc(exp.id)}</a></td>'
            f"<td>{name}</td><td>{_status(exp, rt)}</td><td>{_variants(exp, rt)}</td>"
            f'<td class="num">{units}</td><td>{rec}</td><td>{runtime_tags(exp, rt)}</td></tr>'
        )
    note = "" if src.store is not None else empty(NO_STORE)
    return (
        f"<h1>Experiments</h1>{note}"
        '<table class="list"><thead><tr><th>Id</th><th>Name</th><th>Status</th>'
        "<th>Variants</th><th>Units</th><th>Recommendation</th><th>Runtime</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _meta(exp: Experiment, res: ExperimentResult | None, rt: Runtime) -> str:
    items = [
        ("id", esc(exp.id)),
        ("version", f"v{exp.version}"),
        ("status", _status(exp, rt)),
        ("unit", esc(exp.unit)),
    ]
    if exp.owner:
        items.append(("owner", esc(exp.owner)))
    if res is not None:
        total = sum(v.units for v in res.variants.values())
        items.append(("units", f"{total:,}"))
        if res.first_exposure is not None:
            running = (datetime.now(UTC) - res.first_exposure).total_seconds()
            items.append(("running for", esc(duration(running))))
        items.append(("last event", when(res.last_event)))
        items.append(("analysed", when(res.computed_at)))
    meta = " · ".join(f'<span class="muted">{k}</span> {v}' for k, v in items)
    hyp = f'<p class="hypothesis">{esc(exp.hypothesis)}</p>' if exp.hypothesis else ""
    return f'<p class="meta">{meta}</p>{hyp}'


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _chart(src: Sources, exp: Experiment, res: ExperimentResult) -> str:
    primary = res.metrics.get(res.primary) if res.primary else None
    if primary is None:
        return empty("no primary metric with data yet")
    daily = src.daily(exp)
    if daily is None:
        return empty("no primary metric configured")
    if daily.value is None:
        return error_box("Daily results failed:", daily.error or "unknown error")
    seq = exp.decision.sequential
    chart = daily_chart(daily.value, res.treatments, metric_label=primary.label, sequential=seq)
    return chart + daily_table(daily.value, res.treatments, sequential=seq)


def detail_body(src: Sources, exp: Experiment) -> str:
    """Results table, daily chart, every metric, health checks, rollout state and audit."""
    rt = src.runtime(exp.id)
    outcome = src.analysis(exp)
    res = outcome.value if outcome is not None else None
    title = esc(exp.name or exp.id)
    parts = [f"<h1>{title}</h1>", _meta(exp, res, rt)]
    parts.append(f'<div class="runtime-tags">{runtime_tags(exp, rt)}</div>')
    if outcome is None:
        parts.append(empty(NO_STORE))
    elif res is None:
        parts.append(error_box("Analysis failed:", outcome.error or "unknown error"))
    elif not any(v.units for v in res.variants.values()):
        parts.append(empty("no data yet: no unit has been exposed to this experiment"))
    if res is not None:
        parts.append(recommendation_box(res))
        if res.recommendation.decision is Decision.INVALID:
            parts.append(error_box("Do not trust these figures:", "sample ratio mismatch"))
        parts.append(
            _section("Variant performance", summary_table(res, rt.paused_variants), "summary")
        )
        parts.append(
            _section("Cumulative effect on the primary metric", _chart(src, exp, res), "daily")
        )
        parts.append(_section("All metrics", metrics_table(res), "metrics"))
        health = (
            srm_section(res)
            + "<h3>Guardrails</h3>"
            + guardrails_section(res, len(exp.guardrails))
            + warnings_section(res)
        )
        parts.append(_section("Health checks", health, "health"))
    plan = plan_section(exp, rt, src.controller(exp.id))
    rollout = runtime_section(exp, rt) + plan + actions_hint(exp)
    parts.append(_section("Rollout state", rollout, "rollout"))
    try:
        audit, error = src.audit(exp.id), None
    except Exception as exc:  # the state backend may be down: say so in the page
        audit, error = None, str(exc) or type(exc).__name__
    parts.append(_section("Audit log", audit_section(audit, error), "audit"))
    return "\n".join(parts)


def not_found_body(experiment_id: str, known: list[str]) -> str:
    """The 404 page's body: the id asked for and the ones that exist."""
    links = ", ".join(f'<a href="{esc(experiment_href(k))}">{esc(k)}</a>' for k in known)
    return (
        f"<h1>No experiment {esc(experiment_id)}</h1><p>Known experiments: {links or 'none'}.</p>"
    )
