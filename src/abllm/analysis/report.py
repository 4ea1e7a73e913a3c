"""Human output of a result: seed 001's results view, then every metric, then the verdict.

Arrows say *better* (↑) or *worse* (↓) than control in the metric's own direction, shown only
when the difference is significant (✓ marks the p-value); latency going down is ↑.
Used by ``abllm analyze`` and by the demo.
"""

from __future__ import annotations

import math
from dataclasses import replace

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from abllm.analysis.result import (
    ArmResult,
    Comparison,
    Decision,
    ExperimentResult,
    MetricResult,
)

_COLORS = {
    Decision.SHIP: "bold green",
    Decision.KEEP_CONTROL: "bold yellow",
    Decision.NO_DIFFERENCE: "bold",
    Decision.CONTINUE: "bold cyan",
    Decision.INVALID: "bold red",
    Decision.PAUSE: "bold red",
}
_MONEY = ("cost_per_request", "cost_per_success")


def fmt_value(metric: MetricResult, x: float) -> str:
    """A metric value in its natural unit: percent, ms, dollars or a plain number."""
    if not math.isfinite(x):
        return "–"
    name = metric.name
    if metric.kind == "proportion" or name.endswith("_rate"):
        return f"{x * 100:.1f}%"
    if name.endswith("_ms"):
        return f"{x / 1000:.2f}s" if x >= 10_000 else f"{x:.0f} ms"
    if name in _MONEY or "cost" in name:
        return f"${x:.4f}"
    return f"{x:.3g}" if abs(x) >= 1000 else f"{x:.3f}"


def _arrow(metric: MetricResult, cmp: Comparison | None) -> str:
    if cmp is None or not cmp.significant:
        return ""
    return " [green]↑[/]" if cmp.better(metric.direction) else " [red]↓[/]"


def _pval(cmp: Comparison | None) -> str:
    if cmp is None:
        return "–"
    if not math.isfinite(cmp.p_value):
        return cmp.error or "–"
    mark = " [green]✓[/]" if cmp.significant else ""
    return f"{_p(cmp.p_value)}{mark}"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _lift(cmp: Comparison | None) -> str:
    if cmp is None:
        return "–"
    if not math.isfinite(cmp.rel_lift):
        return cmp.error or "–"
    lo, hi = cmp.rel_ci
    ci = (
        f" ({lo * 100:+.1f}% to {hi * 100:+.1f}%)"
        if math.isfinite(lo) and math.isfinite(hi)
        else ""
    )
    return f"{cmp.rel_lift * 100:+.1f}%{ci}"


def _cell(metric: MetricResult | None, variant: str, ci: bool = False) -> str:
    if metric is None or variant not in metric.arms:
        return "–"
    arm: ArmResult = metric.arms[variant]
    text = fmt_value(metric, arm.mean)
    if ci and all(math.isfinite(b) for b in arm.ci):
        text += f" [dim]({fmt_value(metric, arm.ci[0])}–{fmt_value(metric, arm.ci[1])})[/]"
    return text + _arrow(metric, metric.comparisons.get(variant))


def summary_table(result: ExperimentResult) -> Table:
    """Variant, traffic, primary metric with CI, latency, cost per query, primary p-value."""
    primary = result.metrics.get(result.primary) if result.primary else None
    latency = result.metrics.get("latency_ms")
    cost = result.metrics.get("cost_per_request")
    table = Table(title=f"Experiment: {result.experiment_id} (v{result.version})")
    table.add_column("Variant")
    table.add_column("Traffic", justify="right")
    if primary is not None:
        table.add_column(f"{primary.label} (primary)", justify="right")
    if latency is not None:
        table.add_column("Latency", justify="right")
    if cost is not None:
        table.add_column("Cost/Query", justify="right")
    table.add_column("p-value", justify="right")
    for v in result.variants.values():
        row = [v.variant_id + (" (control)" if v.control else ""), f"{v.share:.0%} ({v.units:,})"]
        if primary is not None:
            row.append(_cell(primary, v.variant_id, ci=True))
        if latency is not None:
            row.append(_cell(latency, v.variant_id))
        if cost is not None:
            row.append(_cell(cost, v.variant_id))
        cmp = primary.comparisons.get(v.variant_id) if primary is not None else None
        row.append(_pval(cmp))
        table.add_row(*row)
    return table


def metrics_table(result: ExperimentResult) -> Table:
    """Every metric with data: value and CI per arm, lift vs control, p-values, P(win)."""
    table = Table(title="Metrics (treatment vs control)", show_lines=False)
    for col, justify in (
        ("Metric", "left"),
        ("Variant", "left"),
        ("n", "right"),
        ("Value (CI)", "right"),
        ("Lift (CI)", "right"),
        ("p", "right"),
        ("p seq.", "right"),
        ("P(win)", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for metric in result.metrics.values():
        first = True
        for variant in result.variants:
            if variant not in metric.arms:
                continue
            cmp = metric.comparisons.get(variant)
            label = metric.label + (
                f" [dim]({metric.role})[/]" if metric.role != "secondary" else ""
            )
            seq = (
                f"{cmp.p_value_sequential:.3f}"
                if cmp and math.isfinite(cmp.p_value_sequential)
                else "–"
            )
            ctw = f"{cmp.chance_to_win:.0%}" if cmp and math.isfinite(cmp.chance_to_win) else "–"
            table.add_row(
                label if first else "",
                variant,
                f"{metric.arms[variant].n:,}",
                _cell(metric, variant, ci=True),
                _lift(cmp),
                _pval(cmp),
                seq,
                ctw,
            )
            first = False
    return table


def print_result(result: ExperimentResult, console: Console) -> None:
    """Print the summary view, the metric table, health checks and the recommendation."""
    console.print(summary_table(result))
    console.print("✓ significant   ↑ better than control   ↓ worse than control", style="dim")
    console.print(metrics_table(result))
    srm = result.srm
    srm_text = "[red]MISMATCH[/]" if srm.flag else "ok"
    p = f"{srm.p_value:.3g}" if math.isfinite(srm.p_value) else "n/a"
    console.print(f"Sample ratio check: {srm_text} (p={p})")
    for g in result.guardrails:
        state = "[red]BREACHED[/]" if g.breached else "ok"
        console.print(f"Guardrail {g.metric} ({g.variant}): {state} — {escape(g.reason)}")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    rec = result.recommendation
    target = f" {rec.variant}" if rec.variant and rec.decision is Decision.SHIP else ""
    console.print(
        f"\nRecommendation: [{_COLORS[rec.decision]}]{rec.decision.value}{target}[/]",
        highlight=False,
    )
    console.print(f"- {rec.reason}", highlight=False, markup=False)
    if rec.units_needed:
        console.print(f"- units still needed per arm: {rec.units_needed:,}", highlight=False)
    held = result.holdback
    if held is not None:
        # Configured metrics and the error rate: the long-term view, not every built-in again.
        kept = {k: m for k, m in held.metrics.items() if not m.builtin or k == "error_rate"}
        table = metrics_table(replace(held, metrics=kept))
        table.title = "Holdback: held-back units vs everyone exposed (long-term effect)"
        console.print(table)
