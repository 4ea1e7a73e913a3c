"""abllm's own assignment rules against the versioned golden vectors in ``tests/spec``.

The vectors (``tests/spec/assignment-cases.json``, written by ``make_assignment_cases.py``) are
what another SDK runs to assign exactly as abllm does; a rule change bumps ``spec_version`` and
regenerates them, never edits them in place.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from abllm.assign import RuntimeState, assign
from abllm.config import Experiment, loads_experiments

SPEC = json.loads(
    (Path(__file__).resolve().parents[1] / "spec" / "assignment-cases.json").read_text()
)
EXPERIMENTS: dict[str, Experiment] = {
    experiment_id: loads_experiments(json.dumps({"experiments": [d]})).experiments[0]
    for experiment_id, d in SPEC["experiments"].items()
}


def _state(state: dict[str, Any] | None) -> RuntimeState | None:
    if state is None:
        return None
    fields = dict(state)
    if "paused_variants" in fields:
        fields["paused_variants"] = frozenset(fields["paused_variants"])
    return RuntimeState(**fields)


def test_spec_is_versioned_and_covers_every_reason() -> None:
    assert SPEC["spec_version"] == 1
    reasons = {c["expected"]["reason"] for c in SPEC["cases"]}
    assert reasons >= {
        "assigned", "holdout", "forced", "killed", "paused", "not_targeted", "other_layer",
        "outside_traffic", "variant_paused", "winner_rollout",
    }  # fmt: skip


def test_every_case_assigns_as_recorded() -> None:
    wrong = []
    for case in SPEC["cases"]:
        a = assign(
            EXPERIMENTS[case["experiment"]],
            case["unit_id"],
            case["attributes"],
            datetime.fromisoformat(case["now"]),
            _state(case["state"]),
        )
        got = {
            "variant_id": a.variant_id,
            "served_variant_id": a.served_variant_id,
            "in_experiment": a.in_experiment,
            "reason": str(a.reason),
            "bucket": a.bucket,
        }
        if got != case["expected"]:
            wrong.append((case["experiment"], case["unit_id"], case["state"], got))
    assert wrong == [], wrong[:5]
