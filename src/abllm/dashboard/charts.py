"""The experiment page's other charts, drawn as inline SVG by the package (no chart library).

- :func:`forest_plot`: every metric's relative lift against control with its CI, one row per
  metric and treatment, coloured by significance in the metric's own direction;
- :func:`time_lines`: values per variant over time with events (stage changes, pauses) marked
  as vertical lines; used for traffic per period and cost per request;
- :func:`quantile_strips`: the latency distribution per variant as its p50, p95, p99 and mean.

Every chart is a ``<figure>`` holding one ``<svg class="chart">`` with a ``<title>`` and a
caption; numbers come from the analysis package and are escaped like everything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from abllm.analysis import ExperimentResult, MetricResult
from abllm.analysis.report import fmt_value
from abllm.dashboard.chart import PALETTE, nice_ticks
from abllm.dashboard.html import esc

WIDTH = 760
LEFT, RIGHT = 150, 16


def _svg(title: str, height: int, parts: list[str], caption: str, name: str) -> str:
    return (
        f'<figure class="chart" data-chart="{esc(name)}">'
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(title)}</title>{''.join(parts)}</svg>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _legend(names: Sequence[str]) -> str:
    return " ".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{esc(n)}</span>'
        for i, n in enumerate(names)
    )


def _axis(lo: float, hi: float, pad: float = 0.08) -> tuple[float, float, list[float]]:
    span = (hi - lo) * pad or max(abs(hi), 1e-3) * 0.5
    lo, hi = lo - span, hi + span
    return lo, hi, nice_ticks(lo, hi, count=6)


def forest_plot(result: ExperimentResult) -> str:
    """Relative lift (CI) per metric and treatment; the zero line is "same as control"."""
    rows: list[tuple[MetricResult, str, float, float, float, str]] = []
    for metric in result.metrics.values():
        for variant, cmp in metric.comparisons.items():
            lo, hi = cmp.rel_ci
            if not all(math.isfinite(x) for x in (cmp.rel_lift, lo, hi)):
                continue
            better = cmp.better(metric.direction)
            cls = ("good" if better else "bad") if cmp.significant else "ns"
            rows.append((metric, variant, cmp.rel_lift, lo, hi, cls))
    if not rows:
        return '<p class="empty">no lift with a confidence interval yet</p>'
    row_h, top, bottom = 22, 10, 34
    height = top + bottom + row_h * len(rows)
    x_lo, x_hi, ticks = _axis(min(0.0, *(r[3] for r in rows)), max(0.0, *(r[4] for r in rows)))

    def x(v: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (v - x_lo) / (x_hi - x_lo)

    parts = [
        f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" '
        f'y2="{height - bottom}"/><text class="xlab" x="{x(t):.1f}" '
        f'y="{height - bottom + 16}">{t * 100:+g}%</text>'
        for t in ticks
    ]
    parts.append(
        f'<line class="zero" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{height - bottom}"/>'
    )
    for i, (metric, variant, est, lo, hi, cls) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        label = f"{metric.label} · {variant}"
        tip = f"{label}: {est * 100:+.1f}% ({lo * 100:+.1f}% to {hi * 100:+.1f}%)"
        parts.append(
            f'<text class="rowlab" x="{LEFT - 8}" y="{y + 4:.1f}">{esc(label[:24])}</text>'
            f'<g class="row {cls}"><title>{esc(tip)}</title>'
            f'<line class="ci" x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<rect class="est" x="{x(est) - 4:.1f}" y="{y - 4:.1f}" width="8" height="8"/></g>'
        )
    title = "Lift vs control with CI, per metric"
    caption = (
        '<span class="key good">■ significantly better</span> '
        '<span class="key bad">■ significantly worse</span> '
        '<span class="key ns">■ not significant</span> '
        f'<span class="muted">bars: {1 - result.alpha:.0%} CI of the relative lift</span>'
    )
    return _svg(title, height, parts, caption, "forest")


@dataclass(frozen=True)
class Marker:
    """A moment to mark on a time chart: a stage change, a pause, a kill."""

    ts: datetime
    label: str


def _marker_label(m: Marker, at: float, y: float) -> str:
    """The marker's name beside its line, on the inner side near the right edge."""
    text = esc(m.label[:18])
    if at > WIDTH - 120:
        return f'<text x="{at - 3:.1f}" y="{y + 10}" style="text-anchor:end">{text}</text>'
    return f'<text x="{at + 3:.1f}" y="{y + 10}">{text}</text>'


def time_lines(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[datetime, float]]]],
    fmt_y: Callable[[float], str],
    markers: Sequence[Marker],
    name: str,
    note: str,
) -> str:
    """One line per variant over time, with ``markers`` as labelled vertical lines."""
    values = [v for _, pts in series for _, v in pts if math.isfinite(v)]
    times = [t for _, pts in series for t, _ in pts]
    if not values or not times:
        return '<p class="empty">no data over time yet</p>'
    height, top, bottom, left = 250, 32, 40, 64
    t0, t1 = min(times), max(times)
    span = (t1 - t0).total_seconds() or 1.0
    y_lo, y_hi, ticks = _axis(min(0.0, *values), max(values))

    def x(t: datetime) -> float:
        return left + (WIDTH - left - RIGHT) * (t - t0).total_seconds() / span

    def y(v: float) -> float:
        return top + (height - top - bottom) * (y_hi - v) / (y_hi - y_lo)

    parts = [
        f'<line class="grid" x1="{left}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
        f'<text class="ylab" x="{left - 6}" y="{y(t) + 4:.1f}">{esc(fmt_y(t))}</text>'
        for t in ticks
    ]
    hourly = span < 2 * 86400
    for i in range(5):
        t = t0 + (t1 - t0) * (i / 4)
        label = t.strftime("%d %H:%M") if hourly else t.strftime("%b %d")
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        parts.append(
            f'<text class="xlab" x="{x(t):.1f}" y="{height - bottom + 16}" '
            f'style="text-anchor:{anchor}">{label}</text>'
        )
    parts.extend(
        f'<g class="marker"><title>{esc(m.label)} at {m.ts:%Y-%m-%d %H:%M} UTC</title>'
        f'<line x1="{x(m.ts):.1f}" x2="{x(m.ts):.1f}" y1="{top - 8}" '
        f'y2="{height - bottom}"/>{_marker_label(m, x(m.ts), top - 12 - 10 * (k % 2))}</g>'
        for k, m in enumerate(mk for mk in markers if t0 <= mk.ts <= t1)
    )
    for i, (variant, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        ok = [(t, v) for t, v in pts if math.isfinite(v)]
        if len(ok) > 1:
            line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in ok)
            parts.append(f'<polyline class="line" stroke="{color}" points="{line}"/>')
        parts.extend(
            f'<circle class="dot" fill="{color}" cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5">'
            f"<title>{esc(variant)}: {esc(fmt_y(v))} ({t:%Y-%m-%d %H:%M})</title></circle>"
            for t, v in ok
        )
    caption = f'{_legend([s for s, _ in series])} <span class="muted">{esc(note)}</span>'
    return _svg(title, height, parts, caption, name)


def quantile_strips(result: ExperimentResult, base: str = "latency_ms") -> str:
    """Per variant: a bar from p50 to p99 with ticks at p50, p95, p99 and a dot at the mean."""
    names = {q: f"p{q}_{base}" for q in (50, 95, 99)}
    have = {q: result.metrics[n] for q, n in names.items() if n in result.metrics}
    mean = result.metrics.get(base)
    if not have:
        return '<p class="empty">no latency data yet</p>'
    variants = [v for v in result.variants if any(v in m.arms for m in have.values())]
    if not variants:
        return '<p class="empty">no latency data yet</p>'
    vals: dict[str, dict[str, float]] = {}
    for v in variants:
        row = {f"p{q}": m.arms[v].mean for q, m in have.items() if v in m.arms}
        if mean is not None and v in mean.arms:
            row["mean"] = mean.arms[v].mean
        vals[v] = {k: x for k, x in row.items() if math.isfinite(x)}
    every = [x for row in vals.values() for x in row.values()]
    if not every:
        return '<p class="empty">no latency data yet</p>'
    row_h, top, bottom = 30, 10, 34
    height = top + bottom + row_h * len(variants)
    x_lo, x_hi, ticks = _axis(0.0, max(every), pad=0.1)
    x_lo = 0.0
    ticks = [t for t in ticks if t >= 0]

    def x(v: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (v - x_lo) / (x_hi - x_lo)

    metric = next(iter(have.values()))
    parts = [
        f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - bottom}"/>'
        f'<text class="xlab" x="{x(t):.1f}" y="{height - bottom + 16}">'
        f"{esc(fmt_value(metric, t))}</text>"
        for t in ticks
    ]
    for i, v in enumerate(variants):
        row, y = vals[v], top + row_h * i + row_h / 2
        color = PALETTE[i % len(PALETTE)]
        tip = ", ".join(f"{k} {fmt_value(metric, val)}" for k, val in row.items())
        parts.append(
            f'<text class="rowlab" x="{LEFT - 8}" y="{y + 4:.1f}">{esc(v[:20])}</text>'
            f'<g class="strip"><title>{esc(v)}: {esc(tip)}</title>'
        )
        lo, hi = row.get("p50"), row.get("p99", row.get("p95"))
        if lo is not None and hi is not None:
            parts.append(
                f'<rect x="{x(lo):.1f}" y="{y - 7:.1f}" width="{max(1.0, x(hi) - x(lo)):.1f}" '
                f'height="14" fill="{color}" opacity=".25"/>'
            )
        parts.extend(
            f'<line x1="{x(row[k]):.1f}" x2="{x(row[k]):.1f}" y1="{y - 9:.1f}" '
            f'y2="{y + 9:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<text class="qlab" x="{x(row[k]):.1f}" y="{y - 10:.1f}">{k}</text>'
            for k in ("p50", "p95", "p99")
            if k in row
        )
        if "mean" in row:
            parts.append(f'<circle cx="{x(row["mean"]):.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
        parts.append("</g>")
    caption = (
        '<span class="muted">shaded from p50 to p99, ticks at p50, p95 and p99, '
        "dot at the mean, per variant</span>"
    )
    return _svg("Latency distribution per variant", height, parts, caption, "latency")
