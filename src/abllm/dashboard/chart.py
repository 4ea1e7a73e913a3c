"""The cumulative effect of the primary metric as an inline SVG (no chart library).

One line per treatment: its relative lift against control as of the end of each UTC day, with
the confidence band around it and the zero line. When the experiment decides on always-valid
(sequential) inference, the band is the sequential interval, which is valid at every one of
these daily looks (Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences"); a fixed-horizon interval would be too narrow for a chart people peek at daily.
When no relative lift can be computed (a control mean of zero) the absolute difference is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from abllm.analysis import Comparison, DailyPoint
from abllm.dashboard.html import esc

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44
PALETTE = ("#2563eb", "#d97706", "#7c3aed", "#059669", "#db2777", "#0891b2")


@dataclass(frozen=True)
class Series:
    """One treatment's points: (day index, estimate, low, high); NaN where unknown."""

    variant: str
    color: str
    points: list[tuple[int, float, float, float]]


def _band(cmp: Comparison, relative: bool, sequential: bool) -> tuple[float, float, float]:
    if relative:
        est, ci, seq = cmp.rel_lift, cmp.rel_ci, cmp.seq_rel_ci
    else:
        est, ci, seq = cmp.diff, cmp.diff_ci, cmp.seq_diff_ci
    lo, hi = seq if sequential and all(math.isfinite(x) for x in seq) else ci
    return est, lo, hi


def build_series(
    points: Sequence[DailyPoint], treatments: Sequence[str], sequential: bool
) -> tuple[list[Series], bool]:
    """The series to draw and whether they are relative lifts (else absolute differences)."""
    relative = any(math.isfinite(c.rel_lift) for p in points for c in p.comparisons.values())
    out = []
    for i, variant in enumerate(treatments):
        pts = []
        for day, p in enumerate(points):
            cmp = p.comparisons.get(variant)
            if cmp is None:
                continue
            est, lo, hi = _band(cmp, relative, sequential)
            pts.append((day, est, lo, hi))
        out.append(Series(variant, PALETTE[i % len(PALETTE)], pts))
    return out, relative


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 x 10^k)."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _label(y: float, relative: bool, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step * (100 if relative else 1)))) if step > 0 else 0
    if relative:
        return f"{y * 100:+.{digits}f}%" if y else "0%"
    return f"{y:+.{digits}f}" if y else "0"


def daily_chart(
    points: Sequence[DailyPoint],
    treatments: Sequence[str],
    *,
    metric_label: str,
    sequential: bool,
    hourly: bool = False,
) -> str:
    """The SVG (as escaped markup) for ``points``; a note when nothing can be drawn."""
    series, relative = build_series(points, treatments, sequential)
    values = [
        v
        for s in series
        for (_, est, lo, hi) in s.points
        for v in (est, lo, hi)
        if math.isfinite(v)
    ]
    if not points or not values:
        return '<p class="empty">no daily estimates yet</p>'
    y_lo, y_hi = min([*values, 0.0]), max([*values, 0.0])
    pad = (y_hi - y_lo) * 0.08 or max(abs(y_hi), 1e-3) * 0.5
    y_lo, y_hi = y_lo - pad, y_hi + pad
    ticks = nice_ticks(y_lo, y_hi, count=8)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    n = len(points)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: float) -> float:
        return LEFT + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return TOP + plot_h * (y_hi - v) / (y_hi - y_lo)

    what = "relative lift" if relative else "difference"
    band = "always-valid CI" if sequential else "CI"
    period = "hour" if hourly else "day"
    title = f"{metric_label}: cumulative {what} vs control by {period}, with {band}"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{esc(title)}</title>",
    ]
    parts.extend(
        f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
        f'<text class="ylab" x="{LEFT - 6}" y="{y(t) + 4:.1f}">'
        f"{esc(_label(t, relative, step))}</text>"
        for t in ticks
    )
    parts.append(
        f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>'
    )
    every = max(1, math.ceil(n / 8))
    for i, p in enumerate(points):
        # Every few points and the last; a regular label too close to the last one is dropped.
        if (i % every == 0 and n - 1 - i >= every / 2) or i == n - 1:
            label = p.until.strftime("%d %H:00") if hourly else p.day.strftime("%b %d")
            parts.append(
                f'<text class="xlab" x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 18}">{esc(label)}</text>'
            )
    for s in series:
        parts.extend(_draw(s, x, y, relative))
    parts.append("</svg>")
    legend = " ".join(
        f'<span class="key"><i style="background:{s.color}"></i>{esc(s.variant)}</span>'
        for s in series
    )
    note = f"shaded: {band}; one point per UTC {period}, each using all data up to its end"
    return (
        f'<figure class="chart" data-chart="cumulative">{"".join(parts)}<figcaption>{legend} '
        f'<span class="muted">{esc(note)}</span></figcaption></figure>'
    )


def _stamp(p: DailyPoint, hourly: bool) -> str:
    return p.until.strftime("%Y-%m-%d %H:00") if hourly else p.day.isoformat()


def _fmt(v: float, relative: bool) -> str:
    if not math.isfinite(v):
        return "?"
    return f"{v * 100:+.2f}%" if relative else f"{v:+.4g}"


def _draw(
    s: Series, fx: Callable[[float], float], fy: Callable[[float], float], relative: bool
) -> list[str]:
    """Band (or whiskers for a single point), line and dots with a tooltip per day."""
    ok = [(d, e, lo, hi) for d, e, lo, hi in s.points if math.isfinite(e)]
    banded = [(d, lo, hi) for d, _, lo, hi in ok if math.isfinite(lo) and math.isfinite(hi)]
    out = []
    if len(banded) > 1:
        upper = " ".join(f"{fx(d):.1f},{fy(hi):.1f}" for d, _, hi in banded)
        lower = " ".join(f"{fx(d):.1f},{fy(lo):.1f}" for d, lo, _ in reversed(banded))
        out.append(f'<polygon class="band" fill="{s.color}" points="{upper} {lower}"/>')
    else:
        out.extend(
            f'<line class="whisker" stroke="{s.color}" x1="{fx(d):.1f}" x2="{fx(d):.1f}" '
            f'y1="{fy(lo):.1f}" y2="{fy(hi):.1f}"/>'
            for d, lo, hi in banded
        )
    if len(ok) > 1:
        line = " ".join(f"{fx(d):.1f},{fy(e):.1f}" for d, e, _, _ in ok)
        out.append(f'<polyline class="line" stroke="{s.color}" points="{line}"/>')
    out.extend(
        f'<circle class="dot" fill="{s.color}" cx="{fx(d):.1f}" cy="{fy(e):.1f}" r="3">'
        f"<title>{esc(s.variant)}: {_fmt(e, relative)} "
        f"({_fmt(lo, relative)} to {_fmt(hi, relative)})</title></circle>"
        for d, e, lo, hi in ok
    )
    return out


def daily_table(
    points: Sequence[DailyPoint],
    treatments: Sequence[str],
    *,
    sequential: bool,
    hourly: bool = False,
) -> str:
    """The chart's numbers, per day and treatment, in a collapsed table."""
    series, relative = build_series(points, treatments, sequential)
    band = "always-valid CI" if sequential else "CI"
    rows = []
    for s in series:
        for day, est, lo, hi in s.points:
            p = points[day]
            arm = p.arms.get(s.variant)
            n = f"{arm.n:,}" if arm is not None else "–"
            rows.append(
                f"<tr><td>{esc(_stamp(p, hourly))}</td><td>{esc(s.variant)}</td>"
                f'<td class="num">{n}</td><td class="num">{esc(_fmt(est, relative))}</td>'
                f'<td class="num">{esc(_fmt(lo, relative))} to {esc(_fmt(hi, relative))}</td>'
                "</tr>"
            )
    if not rows:
        return ""
    what = "lift" if relative else "difference"
    return (
        '<details id="daily-numbers"><summary>numbers per day</summary>'
        f"<table class='small'><thead><tr><th>Until (UTC)</th><th>Variant</th><th>Units</th>"
        f"<th>{what}</th><th>{band}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</details>"
    )
