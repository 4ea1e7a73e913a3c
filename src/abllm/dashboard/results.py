"""The results sections of an experiment page: seed 001's table, every metric, SRM, guardrails
and the recommendation.

Arrows follow the CLI (``abllm.analysis.report``): ↑ is *better* than control in the metric's
own direction (latency going down is ↑), ↓ worse; coloured when significant, grey otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from abllm.analysis import ExperimentResult, MetricResult
from abllm.config import Guardrail
from abllm.dashboard.html import (
    arrow,
    badge,
    ci_text,
    empty,
    esc,
    pct,
    pvalue,
    rel_ci_text,
    tag,
    value,
)

#: Operational figures every results table shows next to the configured metrics.
_SUMMARY_EXTRA = (
    "p50_latency_ms",
    "p95_latency_ms",
    "ttft_ms",
    "cost_per_request",
    "error_rate",
)


def _variant_cell(result: ExperimentResult, variant: str, paused: tuple[str, ...]) -> str:
    out = esc(variant)
    if variant == result.control:
        out += ' <span class="muted">(control)</span>'
    if variant in paused:
        out += " " + tag("paused", "warn")
    return out


def _metric_cell(metric: MetricResult | None, variant: str, ci: bool = False) -> str:
    if metric is None or variant not in metric.arms:
        return "–"
    arm = metric.arms[variant]
    text = f'<span class="v">{value(metric, arm.mean)}</span>'
    if ci:
        text += ci_text(metric, arm.ci)
    return text + arrow(metric, metric.comparisons.get(variant))


def summary_metrics(result: ExperimentResult) -> list[MetricResult]:
    """The table's metric columns: primary, the other configured ones, then operations."""
    configured = [m for m in result.metrics.values() if not m.builtin]
    configured.sort(key=lambda m: m.name != result.primary)
    ops = [result.metrics[m] for m in _SUMMARY_EXTRA if m in result.metrics]
    return [*configured, *[m for m in ops if m not in configured]]


def summary_table(result: ExperimentResult, paused: tuple[str, ...] = ()) -> str:
    """Seed 001's view per variant: traffic, units, every configured metric with its CI,
    latency p50/p95, TTFT, cost per request, error rate, the primary metric's p-values and
    chance to win; arrows in each metric's own direction."""
    primary = result.metrics.get(result.primary) if result.primary else None
    metrics = summary_metrics(result)
    head = ["Variant", "Traffic", "Units"]
    for m in metrics:
        role = " <span class='muted'>(primary)</span>" if m is primary else ""
        head.append(f"{esc(m.label)}{role}")
    head += ["p-value", "p-value (seq.)", "P(win)"]
    rows = []
    for v in result.variants.values():
        share = f"{v.share:.0%}" if v.units else "–"
        traffic = f"{share} <span class='muted'>(planned {v.expected_share:.0%})</span>"
        cells = [_variant_cell(result, v.variant_id, paused), traffic, f"{v.units:,}"]
        cells += [
            f'<span data-metric="{esc(m.name)}">'
            f"{_metric_cell(m, v.variant_id, ci=not m.builtin)}</span>"
            for m in metrics
        ]
        cmp = primary.comparisons.get(v.variant_id) if primary is not None else None
        if cmp is None:
            cells += ["–", "–", "–"]
        else:
            mark = ' <span class="sig" title="statistically significant">✓</span>'
            p_cell = pvalue(cmp.p_value) if math.isfinite(cmp.p_value) else esc(cmp.error or "–")
            cells += [
                p_cell + (mark if cmp.significant else ""),
                pvalue(cmp.p_value_sequential),
                pct(cmp.chance_to_win, signed=False, digits=0),
            ]
        rows.append(
            f'<tr data-variant="{esc(v.variant_id)}">'
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    return (
        '<table class="results summary"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + '<p class="legend"><span class="sig">✓</span> statistically significant '
        f"(α = {result.alpha:g}) · "
        '<span class="arrow up sig">↑</span> better than control · '
        '<span class="arrow down sig">↓</span> worse than control · '
        '<span class="arrow ns">↑↓</span> grey: not significant · p-values and P(win) '
        "are the primary metric's</p>"
    )


def metrics_table(result: ExperimentResult) -> str:
    """Every metric with data: value (CI) per arm, lift (CI), p, sequential p, chance to win."""
    head = (
        "Metric",
        "Variant",
        "n",
        "Value (CI)",
        "Lift vs control (CI)",
        "p",
        "p seq.",
        "P(win)",
    )
    body = []
    for metric in result.metrics.values():
        arms = [v for v in result.variants if v in metric.arms]
        for i, variant in enumerate(arms):
            cmp = metric.comparisons.get(variant)
            label = ""
            if i == 0:
                role = (
                    f' <span class="tag role-{esc(metric.role)}">{esc(metric.role)}</span>'
                    if metric.role != "secondary"
                    else ""
                )
                label = f"{esc(metric.label)}{role}"
            if cmp is None:
                lift = p = seq = ctw = "–" if variant != result.control else ""
            elif cmp.error and not math.isfinite(cmp.p_value):
                lift, p, seq, ctw = (f'<span class="muted">{esc(cmp.error)}</span>', "–", "–", "–")
            else:
                lift = pct(cmp.rel_lift) + rel_ci_text(cmp.rel_ci)
                p = pvalue(cmp.p_value) + (' <span class="sig">✓</span>' if cmp.significant else "")
                seq = pvalue(cmp.p_value_sequential)
                ctw = pct(cmp.chance_to_win, signed=False, digits=0)
            cls = ' class="first"' if i == 0 else ""
            body.append(
                f"<tr{cls}><td>{label}</td><td>{esc(variant)}</td>"
                f'<td class="num">{metric.arms[variant].n:,}</td>'
                f'<td class="num">{_metric_cell(metric, variant, ci=True)}</td>'
                f'<td class="num">{lift}</td><td class="num">{p}</td>'
                f'<td class="num">{seq}</td><td class="num">{ctw}</td></tr>'
            )
    if not body:
        return empty("no metric has data yet")
    return (
        '<table class="results metrics"><thead><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def recommendation_box(result: ExperimentResult) -> str:
    """The decision badge, what it concerns and why (and how many units are still needed)."""
    rec = result.recommendation
    more = ""
    if rec.units_needed:
        more = f'<p class="muted">units still needed per arm: {rec.units_needed:,}</p>'
    return (
        f'<div class="recommendation">'
        f"<div>Recommendation {badge(rec.decision, rec.variant)}</div>"
        f'<p class="reason">{esc(rec.reason)}</p>{more}</div>'
    )


def srm_section(result: ExperimentResult) -> str:
    """Sample ratio check: observed against expected units per arm, chi-square p-value."""
    srm = result.srm
    status = tag("mismatch", "bad") if srm.flag else tag("ok", "good")
    p = f"{srm.p_value:.3g}" if math.isfinite(srm.p_value) else "n/a"
    total = sum(srm.observed.values())
    rows = "".join(
        f"<tr><td>{esc(v)}</td><td class='num'>{n:,}</td>"
        f"<td class='num'>{srm.expected.get(v, 0.0):.1%}"
        f" <span class='muted'>({srm.expected.get(v, 0.0) * total:,.0f})</span></td></tr>"
        for v, n in srm.observed.items()
    )
    note = (
        "<p class='warn-text'>The split differs from the configured weights more than chance "
        "allows: assignment or logging is broken, so the results are not trustworthy.</p>"
        if srm.flag
        else ""
    )
    return (
        f"<p>Sample ratio check {status} <span class='muted'>(χ² p = {esc(p)})</span></p>{note}"
        "<table class='small'><thead><tr><th>Variant</th><th>Units</th><th>Expected</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def bounds_text(guardrail: Guardrail, metric: MetricResult | None, control_mean: float) -> str:
    """The bounds as written, each in the metric's own unit (escaped).

    A ratio bound is shown as written (``≤ 1.2× control``) with what it means today in the
    metric's unit (``= 540 ms``); an absolute bound in that unit (``≤ 50.0%``).
    """

    def shown(x: float) -> str:
        return value(metric, x) if metric is not None else esc(f"{x:.4g}")

    out = []
    for ratio, sign in ((guardrail.max_ratio, "≤"), (guardrail.min_ratio, "≥")):
        if ratio is not None:
            now = f" <span class='muted'>(= {shown(ratio * control_mean)})</span>"
            out.append(f"{sign} {ratio:g}× control" + (now if math.isfinite(control_mean) else ""))
    for bound, sign in ((guardrail.max, "≤"), (guardrail.min, "≥")):
        if bound is not None:
            out.append(f"{sign} {shown(bound)}")
    return "<br>".join(out) or "–"


def guardrails_section(result: ExperimentResult, configured: Sequence[Guardrail]) -> str:
    """Each guardrail per treatment: value, bounds, sequential p-value, breached or holding."""
    if not result.guardrails:
        if configured:
            return empty(f"{len(configured)} guardrail(s) configured; none evaluated yet")
        return empty("no guardrails configured")
    by_metric: dict[str, list[Guardrail]] = {}
    for rule in configured:
        by_metric.setdefault(rule.metric, []).append(rule)
    rows = []
    for g in result.guardrails:
        metric = result.metrics.get(g.metric)
        shown = value(metric, g.value) if metric else esc(f"{g.value:.4g}")
        ctl = metric.arms.get(result.control) if metric else None
        mean = ctl.mean if ctl else math.nan
        rules = by_metric.get(g.metric, [])
        bound = "<br>".join(bounds_text(r, metric, mean) for r in rules) or "–"
        state = tag("breached", "bad") if g.breached else tag("holding", "good")
        rows.append(
            f"<tr><td>{esc(g.metric)}</td><td>{esc(g.variant)}</td><td>{state}</td>"
            f"<td class='num'>{shown}</td><td class='num bound'>{bound}</td>"
            f"<td class='num'>{pvalue(g.p_value)}</td><td>on breach: {esc(g.action)}</td>"
            f"<td>{esc(g.reason)}</td></tr>"
        )
    return (
        "<div class='scroll'><table class='small guardrails'><thead><tr><th>Metric</th>"
        "<th>Variant</th><th>Status</th><th>Value</th><th>Bound</th><th>p (seq.)</th>"
        "<th>Action</th><th>Why</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def warnings_section(result: ExperimentResult) -> str:
    """Analysis warnings (unknown variants in the data, skipped guardrails ...)."""
    if not result.warnings:
        return ""
    items = "".join(f"<li>{esc(w)}</li>" for w in result.warnings)
    return f'<ul class="warnings">{items}</ul>'
