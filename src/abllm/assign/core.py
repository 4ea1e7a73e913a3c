"""Assignment: (experiment, unit, attributes, now, runtime state) -> Assignment. Pure.

Order of checks, first match wins (the ``reason`` says which):

1. ``killed``        kill switch on: everyone gets control (beats QA overrides: safety first)
2. ``forced``        the unit has a QA override in ``forced``
3. ``not_running``   status is not running, before ``start`` or after ``end``; ``paused`` when
                     the runtime state pauses the whole experiment
4. ``not_targeted``  a targeting rule fails
5. ``other_layer``   the unit hashes outside this experiment's layer range
6. ``holdout``       the unit is in the holdback (own seed: the same units in every experiment
                     of a layer)
7. ``winner_rollout`` after a decision, the winner is rolled out to a share of units
8. ``outside_traffic`` the unit's bucket is outside the traffic (GrowthBook coverage)
9. ``variant_paused`` the unit's arm is paused by a guardrail: it gets control
10. ``assigned``     in the experiment, in the arm whose bucket range holds its hash

Units that are out get the control's config (``served_variant_id``) but ``variant_id`` None,
so they never count in the analysis as an arm.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from abllm.assign.hashing import Range, get_bucket_ranges, hash_v2
from abllm.assign.hashing import in_namespace as _in_namespace
from abllm.assign.targeting import is_targeted
from abllm.config import Experiment


class Reason(enum.StrEnum):
    """Why a unit got what it got."""

    KILLED = "killed"
    FORCED = "forced"
    NOT_RUNNING = "not_running"
    PAUSED = "paused"
    NOT_TARGETED = "not_targeted"
    OTHER_LAYER = "other_layer"
    HOLDOUT = "holdout"
    WINNER_ROLLOUT = "winner_rollout"
    OUTSIDE_TRAFFIC = "outside_traffic"
    VARIANT_PAUSED = "variant_paused"
    ASSIGNED = "assigned"


@dataclass(frozen=True, slots=True)
class RuntimeState:
    """Runtime overrides kept apart from the YAML definition (kill switch, stage, weights).

    ``traffic`` (percent) and ``weights`` (variant id -> weight) replace the config's values for
    the current rollout stage; ``winner``/``winner_percent`` drive the winner rollout.
    """

    killed: bool = False
    paused: bool = False
    traffic: float | None = None
    weights: Mapping[str, float] | None = None
    paused_variants: frozenset[str] = frozenset()
    winner: str | None = None
    winner_percent: float | None = None
    version: int = 0
    _key: tuple[Any, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        weights = tuple(sorted(self.weights.items())) if self.weights else None
        key = (
            self.killed,
            self.paused,
            self.traffic,
            weights,
            self.paused_variants,
            self.winner,
            self.winner_percent,
        )
        object.__setattr__(self, "_key", key)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuntimeState) and self._key == other._key


DEFAULT_STATE = RuntimeState()


@dataclass(frozen=True, slots=True)
class Assignment:
    """The answer to "which variant does this unit get, and why?".

    ``weights`` says what the arm was drawn from, in the experiment's variant order: the
    probability of each arm for a unit that passed the holdout check — traffic × the
    normalised stage (or bandit) weight, 0 for a paused arm; during a winner rollout the
    winner's share and the control's remainder. ``probability`` is the assigned arm's share
    among the arms a unit could land in (``weights[i] / sum(weights)``), the propensity for
    inverse-probability weighting. Both are None when no random draw decided the arm (killed,
    forced, not running, not targeted, other layer). Exposure events record them
    (docs/analysis.md, "What each exposure records").
    """

    experiment_id: str
    version: int
    variant_id: str | None
    in_experiment: bool
    reason: Reason
    bucket: float | None
    served_variant_id: str
    weights: tuple[float, ...] | None = None
    probability: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of ``abllm assign --json``."""
        return {
            "experiment_id": self.experiment_id,
            "variant_id": self.variant_id,
            "in_experiment": self.in_experiment,
            "reason": str(self.reason),
            "bucket": self.bucket,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything about an experiment that does not depend on the unit, computed once."""

    variant_ids: tuple[str, ...]
    control_id: str
    ranges: tuple[Range, ...]
    seed: str
    holdout: float
    holdout_seed: str
    layer: tuple[str, float, float] | None
    winner: str | None
    winner_share: float
    winner_seed: str
    paused_variants: frozenset[str]
    weights: tuple[float, ...] = ()
    winner_weights: tuple[float, ...] = ()


def build_plan(experiment: Experiment, state: RuntimeState = DEFAULT_STATE) -> Plan:
    """Compile the unit-independent part of assignment (bucket ranges, hash prefixes)."""
    variant_ids = tuple(v.id for v in experiment.variants)
    if state.weights is not None:
        raw = [max(float(state.weights.get(vid, 0.0)), 0.0) for vid in variant_ids]
    else:
        raw = [v.weight for v in experiment.variants]
    total = sum(raw) or 1.0
    weights = [w / total for w in raw]
    traffic = experiment.traffic if state.traffic is None else state.traffic
    seed = experiment.hash_seed
    holdout_seed = experiment.holdout_seed or (
        f"{experiment.layer.name}:holdout" if experiment.layer else f"{seed}:holdout"
    )
    layer = experiment.layer
    in_force = tuple(
        0.0 if vid in state.paused_variants else w * traffic / 100.0
        for vid, w in zip(variant_ids, weights, strict=True)
    )
    winner_share = (state.winner_percent if state.winner_percent is not None else 100.0) / 100
    winner_weights = tuple(
        (winner_share if vid == state.winner else 0.0)
        + (1.0 - winner_share if vid == experiment.control.id else 0.0)
        for vid in variant_ids
    )
    return Plan(
        variant_ids=variant_ids,
        control_id=experiment.control.id,
        ranges=tuple(get_bucket_ranges(len(variant_ids), traffic / 100.0, weights)),
        seed=seed,
        holdout=experiment.holdout / 100.0,
        holdout_seed=holdout_seed,
        layer=(layer.name, layer.range[0], layer.range[1]) if layer else None,
        winner=state.winner,
        winner_share=winner_share,
        winner_seed=f"{seed}:winner",
        paused_variants=state.paused_variants,
        weights=in_force,
        winner_weights=winner_weights,
    )


_PLANS: dict[tuple[int, int, RuntimeState], tuple[Experiment, Plan]] = {}


def plan_for(experiment: Experiment, state: RuntimeState = DEFAULT_STATE) -> Plan:
    """Cached :func:`build_plan`; the cache holds the experiment so its id is never reused."""
    key = (id(experiment), experiment.version, state)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is experiment:
        return hit[1]
    if len(_PLANS) > 1024:
        _PLANS.clear()
    plan = build_plan(experiment, state)
    _PLANS[key] = (experiment, plan)
    return plan


def is_running(experiment: Experiment, now: datetime | None) -> bool:
    """Status running and ``now`` inside the optional [start, end) window."""
    if experiment.status != "running":
        return False
    if experiment.start is None and experiment.end is None:
        return True
    now = now or datetime.now(UTC)
    if experiment.start is not None and now < experiment.start:
        return False
    return not (experiment.end is not None and now >= experiment.end)


def assign(
    experiment: Experiment,
    unit_id: str,
    attributes: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    state: RuntimeState | None = None,
) -> Assignment:
    """Assign one unit. Deterministic: the same inputs always give the same answer.

    >>> from abllm.config import loads_experiments
    >>> exp = loads_experiments(open("examples/summarize.yaml").read()).experiments[0]
    >>> assign(exp, "user-42").variant_id in ("control", "treatment", None)
    True
    """
    state = state or DEFAULT_STATE
    plan = plan_for(experiment, state)
    control = plan.control_id

    def out(reason: Reason, bucket: float | None = None, drawn: bool = False) -> Assignment:
        weights = (
            (plan.winner_weights if plan.winner is not None else plan.weights) if drawn else None
        )
        return Assignment(
            experiment.id, experiment.version, None, False, reason, bucket, control, weights
        )

    def chosen(
        variant: str, reason: Reason, bucket: float, weights: tuple[float, ...]
    ) -> Assignment:
        total = sum(weights)
        i = plan.variant_ids.index(variant)
        p = weights[i] / total if total > 0 else None
        return Assignment(
            experiment.id, experiment.version, variant, True, reason, bucket, variant, weights, p
        )

    if state.killed:
        return out(Reason.KILLED)
    forced = experiment.forced.get(unit_id)
    if forced is not None:
        return Assignment(
            experiment.id, experiment.version, forced, True, Reason.FORCED, None, forced
        )
    if not is_running(experiment, now):
        return out(Reason.NOT_RUNNING)
    if state.paused:
        return out(Reason.PAUSED)
    if experiment.targeting and not is_targeted(experiment.targeting, attributes or {}):
        return out(Reason.NOT_TARGETED)
    if plan.layer is not None and not _in_namespace(unit_id, plan.layer):
        return out(Reason.OTHER_LAYER)
    if plan.holdout > 0 and hash_v2(plan.holdout_seed, unit_id) < plan.holdout:
        return out(Reason.HOLDOUT, drawn=True)
    if plan.winner is not None:
        share = hash_v2(plan.winner_seed, unit_id)
        served = plan.winner if share < plan.winner_share else control
        return chosen(served, Reason.WINNER_ROLLOUT, share, plan.winner_weights)
    n = hash_v2(plan.seed, unit_id)
    for i, (start, end) in enumerate(plan.ranges):
        if start <= n < end:
            variant = plan.variant_ids[i]
            if variant in plan.paused_variants:
                return out(Reason.VARIANT_PAUSED, n, drawn=True)
            return chosen(variant, Reason.ASSIGNED, n, plan.weights)
    return out(Reason.OUTSIDE_TRAFFIC, n, drawn=True)
