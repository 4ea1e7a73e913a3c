"""Runtime sections: what is happening to an experiment now (kill switch, stage, paused arms),
its rollout plan with the current step marked, and the audit log (who changed what, and why).
"""

from __future__ import annotations

import json

from abllm.config import Experiment
from abllm.dashboard.html import empty, esc, tag, when
from abllm.dashboard.sources import Runtime
from abllm.state import AuditEntry


def stage_text(experiment: Experiment, rt: Runtime) -> str | None:
    """``stage 2/4 (expand)`` or ``winner b 75%``; None when no stage is known."""
    if rt.winner is not None:
        share = f" {rt.winner_percent:g}%" if rt.winner_percent is not None else ""
        return f"winner {rt.winner}{share}"
    if rt.stage is None:
        return None
    stages = experiment.rollout.stages if experiment.rollout else []
    total = f"/{len(stages)}" if stages else ""
    name = ""
    if 0 <= rt.stage < len(stages) and stages[rt.stage].name:
        name = f" ({stages[rt.stage].name})"
    return f"stage {rt.stage + 1}{total}{name}"


def status_of(experiment: Experiment, rt: Runtime) -> str:
    """The effective status: the runtime override when one is recorded, else the YAML's."""
    if rt.killed:
        return "killed"
    if rt.status:
        return rt.status
    if rt.paused:
        return "paused"
    return experiment.status


def runtime_tags(experiment: Experiment, rt: Runtime) -> str:
    """Pills for the overview: killed, paused, stage, paused arms, held."""
    out = []
    if rt.killed:
        out.append(tag("killed", "bad"))
    elif rt.paused:
        out.append(tag("paused", "warn"))
    stage = stage_text(experiment, rt)
    if stage:
        out.append(tag(stage, "info"))
    if rt.traffic is not None:
        out.append(tag(f"traffic {rt.traffic:g}%"))
    if rt.paused_variants:
        out.append(tag("paused arms: " + ", ".join(rt.paused_variants), "warn"))
    if rt.held:
        out.append(tag("held after rollback", "warn"))
    return " ".join(out) if out else '<span class="muted">–</span>'


def _weights(weights: object) -> str:
    if not isinstance(weights, dict) or not weights:
        return "as configured"
    total = sum(float(w) for w in weights.values()) or 1.0
    return ", ".join(f"{esc(k)} {float(w) / total:.0%}" for k, w in weights.items())


def runtime_section(experiment: Experiment, rt: Runtime) -> str:
    """A definition list of the runtime state, or a note when none is recorded."""
    if not rt.known:
        return empty(
            "no runtime state recorded: the experiment runs as its YAML says "
            "(no kill, no pause, no rollout stage)"
        )
    rows = [
        ("status", esc(status_of(experiment, rt))),
        ("kill switch", tag("KILLED: everyone gets control", "bad") if rt.killed else "off"),
        ("stage", esc(stage_text(experiment, rt) or "–")),
        ("traffic", f"{rt.traffic:g}%" if rt.traffic is not None else "as configured"),
        ("weights", _weights(dict(rt.weights) if rt.weights is not None else None)),
        ("paused arms", esc(", ".join(rt.paused_variants)) if rt.paused_variants else "none"),
    ]
    if rt.held:
        rows.append(("auto-advance", "held after a guardrail rollback (advance by hand)"))
    if rt.stage_started_at is not None:
        rows.append(("stage since", when(rt.stage_started_at)))
    if rt.updated_at is not None:
        who = f" by {esc(rt.updated_by)}" if rt.updated_by else ""
        rows.append(("last change", f"{when(rt.updated_at)}{who} (state v{rt.version})"))
    return "<dl class='kv'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def plan_section(experiment: Experiment, rt: Runtime, controller: str | None = None) -> str:
    """The rollout plan's stages and winner steps, the current one highlighted.

    ``controller`` is the process holding the experiment's controller lease: "automatic" is
    only claimed when one runs.
    """
    plan = experiment.rollout
    if plan is None or (not plan.stages and not plan.winner):
        return ""
    items = []
    for i, s in enumerate(plan.stages):
        current = rt.winner is None and rt.stage == i
        what = []
        if s.traffic is not None:
            what.append(f"traffic {s.traffic:g}%")
        if s.weights:
            what.append(_weights(dict(s.weights)))
        when_ = []
        if s.after_days is not None:
            when_.append(f"after {s.after_days:g} d")
        if s.min_hours is not None:
            when_.append(f"≥ {s.min_hours:g} h")
        if s.gated:
            when_.append(f"gated, ≥ {s.min_units:,} units/arm")
        label = esc(s.name or f"stage {i + 1}")
        cond = f" <span class='muted'>({esc(', '.join(when_))})</span>" if when_ else ""
        cls = " class='current'" if current else ""
        items.append(f"<li{cls}><strong>{label}</strong>: {'; '.join(what)}{cond}</li>")
    for i, w in enumerate(plan.winner):
        current = rt.winner is not None and rt.winner_stage == i
        cls = " class='current'" if current else ""
        hours = f" for {w.hours:g} h" if w.hours else ""
        items.append(f"<li{cls}><strong>winner</strong>: {w.percent:g}%{hours}</li>")
    every = f"guardrails checked every {plan.check_interval_s:g} s"
    if not plan.auto_advance:
        auto = f"advance: manual; {every}"
    elif controller is not None:
        auto = f"advance: automatic; {every} by the controller in {esc(controller)}"
    else:
        auto = (
            "advance: automatic, but <strong>no controller is running</strong>: nothing "
            "advances or pauses on its own; start <code>abllm serve</code> (it runs one) or "
            "<code>abllm rollout run</code>"
        )
    return f"<p class='muted'>{auto}</p><ol class='plan'>{''.join(items)}</ol>"


def _changes(entry: AuditEntry) -> str:
    if not entry.changes:
        return "–"
    out = []
    for name, pair in entry.changes.items():
        before, after = ([*pair, None, None])[:2]
        out.append(
            f"{esc(name)}: {esc(json.dumps(before, default=str))} → "
            f"{esc(json.dumps(after, default=str))}"
        )
    return "<br>".join(out)


def audit_section(entries: list[AuditEntry] | None, error: str | None = None) -> str:
    """The audit log, newest first."""
    if error is not None:
        return f'<div class="error">audit log unavailable: {esc(error)}</div>'
    if entries is None:
        return empty("this server has no state backend, so no audit log")
    if not entries:
        return empty("no changes recorded yet")
    rows = "".join(
        f"<tr><td>{when(e.ts)}</td><td>v{e.version}</td><td>{esc(e.actor)}</td>"
        f"<td>{esc(e.action)}</td><td>{esc(e.reason or '')}</td><td>{_changes(e)}</td></tr>"
        for e in reversed(entries)
    )
    return (
        "<table class='small audit'><thead><tr><th>When (UTC)</th><th>Version</th><th>Who</th>"
        "<th>Action</th><th>Why</th><th>Changes</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


#: Audit actions that are the answer to a guardrail or a person stopping traffic.
_PROTECTIVE = ("pause_variant", "rollback", "pause", "kill", "resume")


def protective_actions(entries: list[AuditEntry] | None) -> str:
    """What was done about guardrails and when (newest first, from the audit log)."""
    rows = [e for e in entries or [] if e.action in _PROTECTIVE]
    if not rows:
        return "<p class='muted'>No pause, rollback or kill recorded.</p>"
    items = "".join(
        f"<li>{when(e.ts)} UTC · <strong>{esc(e.action)}</strong> by {esc(e.actor)}"
        f"{': ' + esc(e.reason) if e.reason else ''}</li>"
        for e in reversed(rows[-5:])
    )
    return f"<p>What was done (audit log):</p><ul class='actions'>{items}</ul>"
