"""Assign many units at once with numpy; identical to :func:`abllm.assign.core.assign`.

The same precedence of reasons as the scalar path is applied with boolean masks, highest
priority first, so each unit keeps the first reason that matches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from abllm.assign.core import DEFAULT_STATE, Assignment, Reason, RuntimeState, is_running, plan_for
from abllm.assign.hashing import fnv_prefix
from abllm.assign.targeting import is_targeted
from abllm.assign.vector import UnitMatrix, hash_v1_many, hash_v2_many
from abllm.config import Experiment

REASONS: tuple[Reason, ...] = tuple(Reason)
_CODE = {reason: np.int8(i) for i, reason in enumerate(REASONS)}
_UNSET = np.int8(-1)
_CHOSEN = frozenset({Reason.ASSIGNED, Reason.WINNER_ROLLOUT})
_DRAWN = _CHOSEN | {Reason.HOLDOUT, Reason.VARIANT_PAUSED, Reason.OUTSIDE_TRAFFIC}


@dataclass(frozen=True)
class AssignmentBatch:
    """Column-wise assignments: ``variant`` is an index into ``variant_ids`` or -1 when out."""

    experiment: Experiment
    variant_ids: tuple[str, ...]
    variant: npt.NDArray[np.int64]
    reason: npt.NDArray[np.int8]
    bucket: npt.NDArray[np.float64]
    weights: tuple[float, ...] = ()  # what drawn units' arms came from (``Assignment.weights``)

    def __len__(self) -> int:
        return len(self.variant)

    def __iter__(self) -> Iterator[Assignment]:
        exp = self.experiment
        control = exp.control.id
        for v, r, b in zip(
            self.variant.tolist(), self.reason.tolist(), self.bucket.tolist(), strict=True
        ):
            variant = self.variant_ids[v] if v >= 0 else None
            bucket = None if b != b else b  # NaN marks "no bucket"
            why = REASONS[r]
            weights = self.weights if why in _DRAWN else None
            total = sum(self.weights)
            p = self.weights[v] / total if weights and variant and why in _CHOSEN else None
            yield Assignment(
                exp.id, exp.version, variant, variant is not None, why, bucket,
                variant or control, weights, p,
            )  # fmt: skip


def assign_many(
    experiment: Experiment,
    unit_ids: Sequence[str],
    attributes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    now: datetime | None = None,
    state: RuntimeState | None = None,
) -> AssignmentBatch:
    """Vectorised :func:`assign`. ``attributes`` is one mapping for all units or one per unit."""
    state = state or DEFAULT_STATE
    plan = plan_for(experiment, state)
    n = len(unit_ids)
    reason = np.full(n, _UNSET, dtype=np.int8)
    variant = np.full(n, -1, dtype=np.int64)
    bucket = np.full(n, np.nan, dtype=np.float64)
    index = {vid: i for i, vid in enumerate(plan.variant_ids)}

    def mark(mask: npt.NDArray[np.bool_] | bool, why: Reason) -> None:
        reason[(reason == _UNSET) & mask] = _CODE[why]

    if state.killed:
        mark(True, Reason.KILLED)
        return AssignmentBatch(experiment, plan.variant_ids, variant, reason, bucket)
    if experiment.forced:
        forced = [index.get(experiment.forced.get(u, ""), -1) for u in unit_ids]
        forced_idx = np.array(forced, dtype=np.int64)
        is_forced = forced_idx >= 0
        mark(is_forced, Reason.FORCED)
        variant[is_forced] = forced_idx[is_forced]
    if not is_running(experiment, now):
        mark(True, Reason.NOT_RUNNING)
    elif state.paused:
        mark(True, Reason.PAUSED)
    if experiment.targeting:
        if attributes is None or isinstance(attributes, Mapping):
            targeted: npt.NDArray[np.bool_] | bool = is_targeted(
                experiment.targeting, attributes or {}
            )
        else:
            targeted = np.array([is_targeted(experiment.targeting, a) for a in attributes])
        mark(~np.asarray(targeted), Reason.NOT_TARGETED)
    matrix = UnitMatrix(unit_ids)
    if plan.layer is not None:
        name, start, end = plan.layer
        h = hash_v1_many("__" + name, matrix)
        mark((h < start) | (h >= end), Reason.OTHER_LAYER)
    if plan.holdout > 0:
        mark(hash_v2_many(fnv_prefix(plan.holdout_seed), matrix) < plan.holdout, Reason.HOLDOUT)
    if plan.winner is not None:
        share = hash_v2_many(fnv_prefix(plan.winner_seed), matrix)
        todo = reason == _UNSET
        winner = np.where(share < plan.winner_share, index[plan.winner], index[plan.control_id])
        variant[todo] = winner[todo]
        bucket[todo] = share[todo]
        mark(True, Reason.WINNER_ROLLOUT)
        return AssignmentBatch(
            experiment, plan.variant_ids, variant, reason, bucket, plan.winner_weights
        )
    todo = reason == _UNSET
    h = hash_v2_many(fnv_prefix(plan.seed), matrix)
    bucket[todo] = h[todo]
    chosen = np.full(n, -1, dtype=np.int64)
    for i, (start, end) in enumerate(plan.ranges):
        chosen[(chosen == -1) & (h >= start) & (h < end)] = i
    mark(chosen == -1, Reason.OUTSIDE_TRAFFIC)
    if plan.paused_variants:
        paused = np.isin(chosen, [index[v] for v in plan.paused_variants if v in index])
        mark(paused, Reason.VARIANT_PAUSED)
    todo = reason == _UNSET
    variant[todo] = chosen[todo]
    mark(True, Reason.ASSIGNED)
    return AssignmentBatch(experiment, plan.variant_ids, variant, reason, bucket, plan.weights)
