"""The two pages: the experiment list and one experiment's results, rollout and audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from abllm.analysis import Decision, ExperimentResult
from abllm.config import Experiment
from abllm.dashboard.chart import daily_chart, daily_table
from abllm.dashboard.charts import Marker, forest_plot, quantile_strips, time_lines
from abllm.dashboard.controls import controls_section
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
    audit_section,
    plan_section,
    protective_actions,
    runtime_section,
    runtime_tags,
    stage_text,
    status_of,
)
from abllm.dashboard.sources import Runtime, Sources
from abllm.dashboard.variants import variants_section
from abllm.state import AuditEntry

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


def _badges(res: ExperimentResult) -> str:
    """Recommendation, SRM and breached guardrails as badges for the list."""
    out = [badge(res.recommendation.decision, res.recommendation.variant)]
    if res.srm.flag:
        out.append(tag("SRM", "bad"))
    breached = sorted({g.metric for g in res.guardrails if g.breached})
    if breached:
        out.append(tag("guardrail breached: " + ", ".join(breached), "bad"))
    return " ".join(out)


def _traffic(exp: Experiment, rt: Runtime) -> str:
    if rt.winner is not None and rt.winner_percent is not None:
        return f"{rt.winner_percent:g}% to {esc(rt.winner)}"
    if rt.traffic is not None:
        return f"{rt.traffic:g}%"
    return f"{exp.traffic:g}%"


def _filter(statuses: list[str], current: str | None) -> str:
    links = [("all", PREFIX, current is None)]
    links += [(st, f"{PREFIX}?status={quote(st)}", st == current) for st in statuses]
    items = "".join(
        f'<a href="{esc(href)}" class="{"current" if on else ""}">{esc(label)}</a>'
        for label, href, on in links
    )
    return f'<nav class="filter"><span class="muted">status:</span> {items}</nav>'


_LIST_HEAD = (
    "Experiment", "Status", "Stage", "Traffic", "Units", "Age", "Recommendation", "Variants",
    "Runtime",
)  # fmt: skip


def overview_body(src: Sources, status: str | None = None) -> str:
    """Every experiment: status, stage, traffic, units, age and badges; ``status`` filters."""
    experiments = src.experiments()
    if not experiments:
        return "<h1>Experiments</h1>" + empty("this server serves no experiments")
    rows, statuses = [], set()
    now = datetime.now(UTC)
    for exp in experiments:
        rt = src.runtime(exp.id)
        st = status_of(exp, rt)
        statuses.add(st)
        if status is not None and st != status:
            continue
        outcome = src.analysis(exp)
        age = "–"
        if outcome is None:
            units, rec = f'<span class="muted">{esc(NO_STORE)}</span>', ""
        elif outcome.value is None:
            units = "–"
            rec = f'<span class="badge bad" title="{esc(outcome.error)}">analysis error</span>'
        else:
            res = outcome.value
            total = sum(v.units for v in res.variants.values())
            units = f"{total:,}" if total else '<span class="muted">no data yet</span>'
            rec = _badges(res)
            if res.first_exposure is not None:
                age = esc(duration((now - res.first_exposure).total_seconds()))
        name = f'<br><span class="muted">{esc(exp.name)}</span>' if exp.name else ""
        stage = stage_text(exp, rt) or "–"
        link = f'<a href="{esc(experiment_href(exp.id))}">{esc(exp.id)}</a>{name}'
        cells = zip(
            _LIST_HEAD,
            (link, _status(exp, rt), esc(stage), _traffic(exp, rt), units, age, rec,
             _variants(exp, rt), runtime_tags(exp, rt)),
            strict=True,
        )  # fmt: skip
        rows.append(
            f'<tr data-status="{esc(st)}">'
            + "".join(f'<td data-label="{h}">{c}</td>' for h, c in cells)
            + "</tr>"
        )
    note = "" if src.store is not None else empty(NO_STORE)
    body = (
        '<table class="list"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in _LIST_HEAD)
        + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else empty(f"no experiment is {status}")
    )
    return f"<h1>Experiments</h1>{_filter(sorted(statuses), status)}{note}{body}"


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


_MARKED = {"advance", "rollback", "pause", "kill", "resume", "pause_variant", "start_winner",
           "reweight", "complete"}  # fmt: skip


def _hourly(res: ExperimentResult) -> bool:
    """Hourly points when the data spans less than two days (daily ones would be 1-2 dots)."""
    if res.first_exposure is None:
        return False
    end = res.last_event or datetime.now(UTC)
    return (end - res.first_exposure).total_seconds() < 2 * 86400


def _chart(src: Sources, exp: Experiment, res: ExperimentResult) -> str:
    primary = res.metrics.get(res.primary) if res.primary else None
    if primary is None:
        return empty("no primary metric with data yet")
    hourly = _hourly(res)
    daily = src.daily(exp, hourly=hourly)
    if daily is None:
        return empty("no primary metric configured")
    if daily.value is None:
        return error_box("Daily results failed:", daily.error or "unknown error")
    seq = exp.decision.sequential
    chart = daily_chart(
        daily.value, res.treatments, metric_label=primary.label, sequential=seq, hourly=hourly
    )
    return chart + daily_table(daily.value, res.treatments, sequential=seq, hourly=hourly)


def _markers(audit: list[AuditEntry] | None) -> list[Marker]:
    return [Marker(e.ts, e.action) for e in audit or [] if e.action in _MARKED]


def _over_time(
    src: Sources, exp: Experiment, res: ExperimentResult, audit: list[AuditEntry] | None
) -> str:
    """Traffic per variant per period (with stage changes and pauses) and cost per request."""
    hourly = _hourly(res)
    period = "hour" if hourly else "day"
    marks = _markers(audit)
    out = []
    daily = src.daily(exp, hourly=hourly)
    if daily is not None and daily.value:
        series = []
        for v in res.variants:
            pts, before = [], 0
            for p in daily.value:
                n = p.units.get(v, 0)
                pts.append((p.until, float(n - before)))
                before = n
            series.append((v, pts))
        out.append(time_lines(
            f"Traffic: new units per variant per {period}", series, lambda y: f"{y:,.0f}",
            marks, "traffic", f"units first exposed in each {period}; lines: rollout changes",
        ))  # fmt: skip
    cost = (
        src.daily(exp, "cost_per_request", hourly=hourly)
        if "cost_per_request" in res.metrics
        else None
    )
    if cost is not None and cost.value:
        series = [
            (v, [(p.until, p.arms[v].mean) for p in cost.value if v in p.arms])
            for v in res.variants
        ]
        out.append(time_lines(
            "Cost per request over time", series, lambda y: f"${y:.4f}", marks, "cost",
            f"cumulative mean cost per request up to the end of each {period}",
        ))  # fmt: skip
    elif cost is not None and cost.error:
        out.append(error_box("Cost over time failed:", cost.error))
    return "".join(out) or empty("no data over time yet")


def detail_body(src: Sources, exp: Experiment, may_act: bool = False) -> str:
    """Results table, charts, every metric, health checks, rollout state, controls, audit.

    ``may_act``: whether this session may use the controls (admin scope).
    """
    rt = src.runtime(exp.id)
    outcome = src.analysis(exp)
    res = outcome.value if outcome is not None else None
    try:
        audit, audit_error = src.audit(exp.id), None
    except Exception as exc:  # the state backend may be down: say so in the page
        audit, audit_error = None, str(exc) or type(exc).__name__
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
        parts.append(_section("Lift per metric", forest_plot(res), "forest"))
        parts.append(
            _section("Cumulative effect on the primary metric", _chart(src, exp, res), "daily")
        )
        parts.append(_section("Over time", _over_time(src, exp, res, audit), "time"))
        parts.append(_section("Latency distribution", quantile_strips(res), "latency"))
        parts.append(_section("All metrics", metrics_table(res), "metrics"))
    parts.append(_section("Variants", variants_section(exp), "variants"))
    if res is not None:
        health = (
            srm_section(res)
            + "<h3>Guardrails</h3>"
            + guardrails_section(res, exp.guardrails)
            + protective_actions(audit)
            + warnings_section(res)
        )
        parts.append(_section("Health checks", health, "health"))
    plan = plan_section(exp, rt, src.controller(exp.id))
    rollout = runtime_section(exp, rt) + plan
    parts.append(_section("Rollout state", rollout, "rollout"))
    has_state = src.state_store() is not None
    parts.append(_section("Controls", controls_section(exp, may_act, has_state), "controls"))
    parts.append(_section("Audit log", audit_section(audit, audit_error), "audit"))
    return "\n".join(parts)


def not_found_body(experiment_id: str, known: list[str]) -> str:
    """The 404 page's body: the id asked for and the ones that exist."""
    links = ", ".join(f'<a href="{esc(experiment_href(k))}">{esc(k)}</a>' for k in known)
    return (
        f"<h1>No experiment {esc(experiment_id)}</h1><p>Known experiments: {links or 'none'}.</p>"
    )
