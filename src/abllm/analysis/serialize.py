"""``result_to_json``: the documented, stable JSON of ``abllm analyze --json``.

The same document is served by the gateway's ``GET /v1/experiments/{id}/results``. The keys the
issue documents are always present; the extra keys (adjusted p-values, guardrails, units still
needed ...) may grow but never change meaning. Non-finite floats become ``null`` so the output is
strict JSON.
"""

from __future__ import annotations

import math
from typing import Any

from abllm.analysis.result import ArmResult, Comparison, ExperimentResult, MetricResult

JSONValue = Any


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _pair(pair: tuple[float, float]) -> list[float | None]:
    return [_num(pair[0]), _num(pair[1])]


def _arm(arm: ArmResult, cmp: Comparison | None) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {
        "n": int(arm.n),
        "mean": _num(arm.mean),
        "ci": _pair(arm.ci),
        "sd": _num(arm.sd),
    }
    if arm.events is not None:
        out["events"] = int(arm.events)
    if cmp is not None:
        out.update(
            {
                "diff": _num(cmp.diff),
                "diff_ci": _pair(cmp.diff_ci),
                "p_value": _num(cmp.p_value),
                "p_value_sequential": _num(cmp.p_value_sequential),
                "rel_lift": _num(cmp.rel_lift),
                "rel_ci": _pair(cmp.rel_ci),
                "chance_to_win": _num(cmp.chance_to_win),
                "p_value_adjusted": _num(cmp.p_value_adjusted),
                "diff_ci_sequential": _pair(cmp.seq_diff_ci),
                "rel_ci_sequential": _pair(cmp.seq_rel_ci),
                "expected_loss": _num(cmp.expected_loss),
                "significant": bool(cmp.significant),
                "error": cmp.error,
            }
        )
    return out


def _metric(m: MetricResult) -> dict[str, JSONValue]:
    return {v: _arm(arm, m.comparisons.get(v)) for v, arm in m.arms.items()}


def result_to_json(result: ExperimentResult) -> dict[str, JSONValue]:
    """The ``--json`` document::

        {"experiment_id", "control", "srm": {"p_value", "flag"}, "variants": {V: {"units"}},
         "metrics": {M: {V: {"n", "mean", "ci", [treatments:] "diff", "diff_ci", "p_value",
                              "p_value_sequential", "rel_lift", "rel_ci", "chance_to_win"}}},
         "recommendation": {"decision", "variant", "reason"}}

    plus ``version``, ``computed_at``, ``primary``, ``metric_info``, ``guardrails``,
    ``recommendation.units_needed`` and ``holdback`` (null unless the experiment holds units
    back: then ``holdback`` vs ``exposed`` units, SRM and metrics).
    """
    rec = result.recommendation
    return {
        "experiment_id": result.experiment_id,
        "version": result.version,
        "control": result.control,
        "computed_at": result.computed_at.isoformat(),
        "alpha": result.alpha,
        "primary": result.primary,
        "srm": {
            "p_value": _num(result.srm.p_value),
            "flag": bool(result.srm.flag),
            "expected": {k: _num(v) for k, v in result.srm.expected.items()},
            "chi2_p_value": _num(result.srm.chi2_p_value),
            "arms": list(result.srm.arms),
            "unrecorded_units": result.srm.unrecorded_units,
        },
        "variants": {
            v.variant_id: {
                "units": int(v.units),
                "share": _num(v.share),
                "expected_share": _num(v.expected_share),
                "control": v.control,
            }
            for v in result.variants.values()
        },
        "metrics": {name: _metric(m) for name, m in result.metrics.items()},
        "metric_info": {
            name: {
                "kind": m.kind,
                "role": m.role,
                "direction": m.direction,
                "builtin": m.builtin,
                "label": m.label,
            }
            for name, m in result.metrics.items()
        },
        "guardrails": [
            {
                "metric": g.metric,
                "variant": g.variant,
                "breached": g.breached,
                "action": g.action,
                "value": _num(g.value),
                "bound": _num(g.bound),
                "p_value": _num(g.p_value),
                "reason": g.reason,
            }
            for g in result.guardrails
        ],
        "recommendation": {
            "decision": rec.decision.value,
            "variant": rec.variant,
            "reason": rec.reason,
            "units_needed": rec.units_needed,
        },
        "warnings": list(result.warnings),
        "holdback": _holdback(result.holdback),
    }


def _holdback(held: ExperimentResult | None) -> JSONValue:
    """Held-back units vs everyone exposed: units, SRM and every metric (no recommendation)."""
    if held is None:
        return None
    doc = result_to_json(held)
    keys = ("control", "srm", "variants", "metrics")
    return {k: doc[k] for k in keys}
