"""Runtime state of an experiment and its audit trail, kept apart from the YAML definition.

The YAML is the pre-registered definition; :class:`ExperimentState` is what operators and the
rollout controller change while it runs (kill switch, stage, traffic, weights, paused arms,
winner). Every change bumps ``version`` and writes one :class:`AuditEntry` (who, when, what,
why), so "why did 10 % of users get the new prompt on Tuesday?" has an answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from abllm.assign import RuntimeState
from abllm.config import Experiment

RuntimeStatus = Literal["running", "paused", "stopped", "completed"]

#: What a change did; one audit row per change.
Action = Literal[
    "register",
    "new_version",
    "kill",
    "resume",
    "pause",
    "advance",
    "rollback",
    "pause_variant",
    "start_winner",
    "complete",
    "restore",
    "reweight",
    "set",
]

#: Fields of :class:`ExperimentState` an audit row diffs (bookkeeping fields are left out).
AUDITED_FIELDS: tuple[str, ...] = (
    "experiment_version",
    "status",
    "stage",
    "traffic",
    "weights",
    "paused",
    "paused_variants",
    "killed",
    "winner",
    "winner_stage",
    "winner_percent",
    "held",
)


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def variant_fingerprint(experiment: Experiment) -> str:
    """A short hash of the variant ids and the control's id.

    Two configs with the same fingerprint bucket units identically given the same weights, so a
    running experiment may change weights (sticky assignments keep units) but not its variants
    without a version bump (seed 000: "never modify live experiments").
    """
    ids = ",".join(sorted(v.id for v in experiment.variants))
    text = f"{ids}|control={experiment.control.id}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ExperimentState(BaseModel):
    """The runtime state of one experiment (version ``version`` of its history).

    ``status`` None means "as in the YAML". ``stage`` indexes ``rollout.stages``;
    ``winner_stage`` indexes ``rollout.winner`` once a winner is being rolled out. ``traffic``
    and ``weights`` are the values the current stage applies. ``held`` stops automatic advances
    after a guardrail rollback until someone advances by hand. ``definition`` is the experiment
    as last registered, so the CLI and admin API can move stages without the YAML file.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    experiment_id: str
    experiment_version: int = 1
    fingerprint: str | None = None
    status: RuntimeStatus | None = None
    stage: int | None = None
    stage_started_at: datetime | None = None
    traffic: float | None = None
    weights: dict[str, float] | None = None
    paused: bool = False
    paused_variants: tuple[str, ...] = ()
    killed: bool = False
    winner: str | None = None
    winner_stage: int | None = None
    winner_percent: float | None = None
    held: bool = False
    started_at: datetime | None = None
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None
    definition: Experiment | None = None

    def runtime(self) -> RuntimeState:
        """The overrides :func:`abllm.assign.assign` applies for this state."""
        winner, winner_percent = self.winner, self.winner_percent
        paused = self.paused or self.status in ("paused", "stopped")
        if self.status == "completed":
            if winner is None:
                paused = True
            else:
                winner_percent = 100.0
        elif winner is not None and winner_percent is None:
            winner_percent = 100.0
        return RuntimeState(
            killed=self.killed,
            paused=paused,
            traffic=self.traffic,
            weights=dict(self.weights) if self.weights is not None else None,
            paused_variants=frozenset(self.paused_variants),
            winner=winner,
            winner_percent=winner_percent,
            version=self.version,
        )

    def audited(self) -> dict[str, Any]:
        """The audited fields as JSON-ready values."""
        data = self.model_dump(mode="json", include=set(AUDITED_FIELDS))
        return {name: data[name] for name in AUDITED_FIELDS}

    def diff(self, other: ExperimentState) -> dict[str, list[Any]]:
        """``{field: [before, after]}`` for every audited field that differs."""
        before, after = self.audited(), other.audited()
        return {k: [before[k], after[k]] for k in AUDITED_FIELDS if before[k] != after[k]}

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``abllm rollout status --json`` and ``GET .../state``."""
        data = self.model_dump(mode="json", exclude={"definition"})
        data["runtime"] = runtime_json(self.runtime())
        return data

    def stored(self) -> str:
        """Serialised form kept by the backends."""
        return self.model_dump_json()

    @classmethod
    def load(cls, text: str | bytes) -> ExperimentState:
        """Inverse of :meth:`stored`."""
        return cls.model_validate_json(text)


def runtime_json(state: RuntimeState) -> dict[str, Any]:
    """A RuntimeState as JSON (for status output and the admin API)."""
    return {
        "killed": state.killed,
        "paused": state.paused,
        "traffic": state.traffic,
        "weights": dict(state.weights) if state.weights is not None else None,
        "paused_variants": sorted(state.paused_variants),
        "winner": state.winner,
        "winner_percent": state.winner_percent,
        "version": state.version,
    }


class AuditEntry(BaseModel):
    """One change: who made it, when, what it did and why."""

    model_config = ConfigDict(frozen=True)

    experiment_id: str
    version: int = Field(description="the state version this change produced")
    ts: datetime
    actor: str
    action: Action
    reason: str | None = None
    changes: dict[str, list[Any]] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON shape of one row of ``GET .../audit``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_rows(cls, experiment_id: str, rows: Sequence[Sequence[Any]]) -> list[AuditEntry]:
        """Entries, oldest first, from SQL audit rows read newest first.

        Each row is ``(version, ts, actor, action, reason, changes)``; ``changes`` is JSON text.
        """
        return [
            cls(
                experiment_id=experiment_id,
                version=version,
                ts=ts,
                actor=actor,
                action=action,
                reason=reason,
                changes=json.loads(changes),
            )
            for version, ts, actor, action, reason, changes in reversed(rows)
        ]


@dataclass(frozen=True)
class Transition:
    """A change with its audit label: the wanted state, what it is called and why."""

    state: ExperimentState
    action: Action
    reason: str


def new_state(experiment_id: str) -> ExperimentState:
    """The state of an experiment nothing has been recorded for yet (version 0)."""
    return ExperimentState(experiment_id=experiment_id)


def replace(state: ExperimentState, **changes: Any) -> ExperimentState:
    """A copy of ``state`` with ``changes`` applied (validated, unlike ``model_copy``)."""
    data: dict[str, Any] = {
        name: getattr(state, name) for name in ExperimentState.model_fields if name not in changes
    }
    data.update(changes)
    return ExperimentState.model_validate(data)
