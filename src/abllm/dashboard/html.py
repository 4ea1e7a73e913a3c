"""HTML building blocks: escaping, the page layout, badges, number formats and arrows.

Everything that comes from a config file, the event store or the state store goes through
:func:`esc` before it reaches the page (experiment names, variant ids, reasons, audit notes are
all user-controlled text). Fragments are plain f-strings; the one page skeleton is a
``string.Template`` file, so the package needs no template engine.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from string import Template

from abllm.analysis import Comparison, Decision, MetricResult
from abllm.analysis.report import fmt_value
from abllm.dashboard.router import PREFIX

_BADGE_CLASS = {
    Decision.SHIP: "ship",
    Decision.KEEP_CONTROL: "keep",
    Decision.NO_DIFFERENCE: "nodiff",
    Decision.CONTINUE: "continue",
    Decision.INVALID: "bad",
    Decision.PAUSE: "bad",
}


def esc(value: object) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


@cache
def _layout() -> Template:
    text = resources.files("abllm.dashboard").joinpath("templates/layout.html").read_text("utf-8")
    return Template(text)


def page(title: str, body: str, crumbs: list[tuple[str, str | None]], refresh_s: int) -> str:
    """The full document: ``body`` is already-escaped HTML, ``title`` and crumbs are text."""
    trail = " / ".join(
        f'<a href="{esc(href)}">{esc(label)}</a>' if href else f"<span>{esc(label)}</span>"
        for label, href in crumbs
    )
    return _layout().substitute(
        title=esc(title),
        static=f"{PREFIX}/static",
        root=PREFIX,
        crumbs=trail,
        refresh=str(int(refresh_s)),
        rendered=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        body=body,
    )


def badge(decision: Decision | str, variant: str | None = None) -> str:
    """A coloured recommendation badge (``SHIP b``, ``CONTINUE`` ...)."""
    try:
        d = Decision(decision)
    except ValueError:
        return f'<span class="badge">{esc(decision)}</span>'
    label = d.value.replace("_", " ")
    if variant and d is Decision.SHIP:
        label += f" {variant}"
    return f'<span class="badge {_BADGE_CLASS[d]}">{esc(label)}</span>'


def tag(text: str, kind: str = "") -> str:
    """A small pill (``killed``, ``paused: b``, ``stage 2/3``)."""
    cls = f"tag {kind}".strip()
    return f'<span class="{esc(cls)}">{esc(text)}</span>'


def empty(message: str) -> str:
    """A muted note standing in for data that is not there yet."""
    return f'<p class="empty">{esc(message)}</p>'


def error_box(title: str, message: str) -> str:
    """An error shown in the page (the route still answers 200 where the page makes sense)."""
    return f'<div class="error"><strong>{esc(title)}</strong> {esc(message)}</div>'


def finite(*xs: float) -> bool:
    """True when every number is finite (NaN marks "could not be computed")."""
    return all(math.isfinite(x) for x in xs)


def value(metric: MetricResult, x: float) -> str:
    """A metric value in its unit (percent, ms, dollars), escaped; ``–`` when unknown."""
    return esc(fmt_value(metric, x))


def pct(x: float, signed: bool = True, digits: int = 1) -> str:
    """A fraction as a percentage (``+5.1%``); ``–`` when unknown."""
    if not math.isfinite(x):
        return "–"
    return f"{x * 100:+.{digits}f}%" if signed else f"{x * 100:.{digits}f}%"


def pvalue(p: float) -> str:
    """A p-value to three places, ``<0.001`` below that, ``–`` when unknown."""
    if not math.isfinite(p):
        return "–"
    return "&lt;0.001" if p < 0.001 else f"{p:.3f}"


def arrow(metric: MetricResult, cmp: Comparison | None) -> str:
    """↑ better / ↓ worse than control in the metric's own direction (lower latency is ↑).

    Green or red when the difference is significant, grey when it is only the point estimate;
    nothing when there is no estimate.
    """
    if cmp is None or not math.isfinite(cmp.diff) or cmp.diff == 0:
        return ""
    better = cmp.better(metric.direction)
    sign = "↑" if better else "↓"
    if cmp.significant:
        cls, what = ("up sig", "better") if better else ("down sig", "worse")
        title = f"significantly {what} than control"
    else:
        cls = "ns up" if better else "ns down"
        title = "not significant: point estimate only"
    return f' <span class="arrow {cls}" title="{title}">{sign}</span>'


def ci_text(metric: MetricResult, ci: tuple[float, float]) -> str:
    """``(lo – hi)`` in the metric's unit, or nothing when unknown."""
    if not finite(*ci):
        return ""
    return f' <span class="ci">({value(metric, ci[0])} – {value(metric, ci[1])})</span>'


def rel_ci_text(ci: tuple[float, float]) -> str:
    """``(+1.0% to +9.2%)`` or nothing when unknown."""
    if not finite(*ci):
        return ""
    return f' <span class="ci">({pct(ci[0])} to {pct(ci[1])})</span>'


def when(ts: datetime | None) -> str:
    """A timestamp in UTC to the second, ``–`` when absent."""
    if ts is None:
        return "–"
    return esc(ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))


def duration(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 10 min`` or ``45 s``."""
    s = max(0, int(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {rem // 60} min"
    return f"{rem // 60} min" if rem >= 60 else f"{rem} s"
