"""The records of an eval run: one :class:`Trial` per answer, :class:`RunInfo` per run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Trial:
    """One variant's answer to one row in one trial, with its scores."""

    row_id: str
    variant_id: str
    trial: int
    output: str | None
    scores: dict[str, float]
    error_type: str | None = None
    judge_reason: str | None = None
    judge_error: str | None = None
    tool_calls: tuple[dict[str, str], ...] = ()
    tool_violations: int = 0


@dataclass(frozen=True)
class RunInfo:
    """What a run replayed and how it scored, as stored with each of its events."""

    run_id: str
    experiment_id: str
    experiment_version: int
    started: datetime
    dataset: str
    dataset_sha256: str
    repeat: int
    scorers: tuple[str, ...]
    judge: dict[str, str] | None = None


@dataclass(frozen=True)
class StoredRun:
    """A run read back from the store."""

    info: RunInfo
    trials: list[Trial]
