"""Assignment: pure, GrowthBook-compatible hashing and bucketing (no I/O).

``assign`` answers for one unit, ``assign_many`` for millions with numpy; both give identical
results. ``RuntimeState`` carries the runtime overrides (kill switch, paused arms, rollout stage)
kept apart from the experiment's YAML definition.
"""

from abllm.assign.batch import AssignmentBatch, assign_many
from abllm.assign.core import Assignment, Reason, RuntimeState, assign, build_plan, is_running
from abllm.assign.hashing import (
    choose_variation,
    fnv1a32,
    gb_hash,
    get_bucket_ranges,
    get_equal_weights,
    in_namespace,
)

__all__ = [
    "Assignment",
    "AssignmentBatch",
    "Reason",
    "RuntimeState",
    "assign",
    "assign_many",
    "build_plan",
    "choose_variation",
    "fnv1a32",
    "gb_hash",
    "get_bucket_ranges",
    "get_equal_weights",
    "in_namespace",
    "is_running",
]
