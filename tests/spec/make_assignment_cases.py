"""Writes ``assignment-cases.json``: abllm's own assignment rules as golden vectors.

GrowthBook's ``cases.json`` pins the hash and bucket ranges; these vectors pin what abllm adds
on top (holdouts, layers, targeting, forced units, runtime state: kill, pause, stage traffic and
weights, paused arms, winner rollout), so another SDK can check it assigns exactly as abllm does.
Run by hand (``python tests/spec/make_assignment_cases.py``) only when the rules change on
purpose, and then bump ``SPEC_VERSION``: vectors are never edited in place.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from abllm.assign import RuntimeState, assign
from abllm.config import loads_experiments

SPEC_VERSION = 1
HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ATTRIBUTES: list[dict[str, Any]] = [
    {},
    {"plan": "pro", "country": "DE"},
    {"plan": "free", "country": "US"},
    {"plan": "enterprise", "country": "XX"},
]
STATES: list[dict[str, Any] | None] = [
    None,
    {"killed": True},
    {"paused": True},
    {"traffic": 10.0},
    {"weights": "equal"},
    {"paused_variants": "first treatment"},
    {"winner": "first treatment", "winner_percent": 50.0},
]


def _state(spec: dict[str, Any] | None, variants: list[str]) -> dict[str, Any] | None:
    if spec is None:
        return None
    state = dict(spec)
    if state.get("weights") == "equal":
        state["weights"] = dict.fromkeys(variants, 1.0)
    if state.get("paused_variants") == "first treatment":
        state["paused_variants"] = [variants[1]]
    if state.get("winner") == "first treatment":
        state["winner"] = variants[1]
    return state


def _runtime(state: dict[str, Any] | None) -> RuntimeState | None:
    if state is None:
        return None
    fields = dict(state)
    if "paused_variants" in fields:
        fields["paused_variants"] = frozenset(fields["paused_variants"])
    return RuntimeState(**fields)


def definitions() -> dict[str, dict[str, Any]]:
    """The example experiments, without what assignment does not read (metrics, guardrails)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text())["experiments"]:
            out[raw["id"]] = {k: raw[k] for k in raw if k not in ("metrics", "guardrails")}
    return out


def cases(experiments: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every example experiment × units × attributes × runtime states."""
    out: list[dict[str, Any]] = []
    for experiment_id, definition in experiments.items():
        exp = loads_experiments(json.dumps({"experiments": [definition]})).experiments[0]
        variants = [v.id for v in exp.variants]
        units = [f"user-{i}" for i in range(40)] + list(exp.forced)
        for spec in STATES:
            state = _state(spec, variants)
            for n, unit in enumerate(units):
                attributes = ATTRIBUTES[n % len(ATTRIBUTES)]
                a = assign(exp, unit, attributes, NOW, _runtime(state))
                out.append(
                    {
                        "experiment": experiment_id,
                        "unit_id": unit,
                        "attributes": attributes,
                        "now": NOW.isoformat(),
                        "state": state,
                        "expected": {
                            "variant_id": a.variant_id,
                            "served_variant_id": a.served_variant_id,
                            "in_experiment": a.in_experiment,
                            "reason": str(a.reason),
                            "bucket": a.bucket,
                        },
                    }
                )
    return out


def main() -> None:
    experiments = definitions()
    doc = {
        "spec_version": SPEC_VERSION,
        "description": "abllm assignment: (experiment, unit, attributes, now, state) -> expected",
        "experiments": experiments,
        "cases": cases(experiments),
    }
    lines = ",\n".join(json.dumps(c, default=str) for c in doc.pop("cases"))  # a case a line
    head = json.dumps(doc, indent=1, default=str)[:-2]
    (HERE / "assignment-cases.json").write_text(f'{head},\n "cases": [\n{lines}\n ]\n}}\n')


if __name__ == "__main__":
    main()
