"""Holdback report: units kept out of the experiment (``holdout``) against everyone exposed.

Seed 000's long-term holdback: a share of units stays on the baseline whatever the experiment
does, so its cumulative effect can be measured later. The gateway records an ``exposure`` with
no ``variant_id`` (and ``attrs.reason = "holdout"``) for those units; every other exposure names
a variant. This module reuses the whole analysis (SQL in the store, stats, SRM) on a two-arm view
of the same events: ``holdback`` (the control) against ``exposed`` (all variants pooled).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abllm.config import Experiment
from abllm.errors import Conflict
from abllm.events import Event, EventStore
from abllm.events.schema import COLUMNS

HOLDBACK = "holdback"
EXPOSED = "exposed"

_RELABEL = (
    "CASE WHEN type = 'exposure' THEN "
    f"(CASE WHEN variant_id IS NULL THEN '{HOLDBACK}' ELSE '{EXPOSED}' END) "
    "ELSE variant_id END AS variant_id"
)


class HoldbackView:
    """An :class:`~abllm.events.EventStore` read view whose exposures are relabelled.

    Only reads pass through (``query``); analysis SQL selects ``FROM {events_relation}``, so the
    relabelling happens inside the engine and no event leaves the store.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.dialect: str = store.dialect
        base = getattr(store, "events_relation", "abllm_events")
        cols = ", ".join(_RELABEL if c == "variant_id" else c for c in COLUMNS)
        self.events_relation = f"(SELECT {cols} FROM {base} hb)"  # noqa: S608 - fixed columns

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run read-only SQL on the underlying store."""
        return self._store.query(sql, params)

    def append(self, events: Sequence[Event]) -> int:
        """Refused: this is a read view."""
        raise Conflict("the holdback view is read-only; append to the store itself")

    def count(self, experiment_id: str | None = None) -> int:
        """Events in the underlying store."""
        return self._store.count(experiment_id)

    def close(self) -> None:
        """Nothing to close: the underlying store belongs to the caller."""


def holdback_experiment(experiment: Experiment) -> Experiment:
    """The two-arm view: ``holdback`` (control) vs ``exposed``, same metrics and decision rule.

    Weights are the expected shares: ``holdout`` percent of units are held back and the rest
    enter at ``traffic`` percent, so the SRM check also tests the holdback's own split.
    """
    share = experiment.holdout / 100
    exposed = (1 - share) * experiment.traffic / 100
    llm = experiment.control.llm.model_dump()
    return Experiment.model_validate(
        {
            "id": experiment.id,
            "version": experiment.version,
            "start": experiment.start,
            "variants": [
                {"id": HOLDBACK, "control": True, "weight": share, "llm": llm},
                {"id": EXPOSED, "weight": exposed, "llm": llm},
            ],
            "metrics": [m.model_dump() for m in experiment.metrics],
            "decision": experiment.decision.model_dump(),
        }
    )


def holdback_weights(experiment: Experiment) -> dict[str, float]:
    """Expected holdback/exposed split for the SRM check."""
    share = experiment.holdout / 100
    return {HOLDBACK: share, EXPOSED: (1 - share) * experiment.traffic / 100}
