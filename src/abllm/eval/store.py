"""Eval runs in the event store: one ``eval`` event per (row, variant, trial).

Representation (no new table, so every backend stores runs as it stores events, through
``EventStore.append`` and ``EventStore.query``):

- ``type`` = ``eval``, ``trace_id`` = the run id, ``experiment_id``/``experiment_version`` of
  the experiment, ``variant_id``, ``unit_id`` = the dataset row id, ``ts`` = the run's start;
- ``metrics``: ``score.<scorer>`` → value (never a well-known metric column, so live analysis
  never mixes replay scores with traffic);
- ``attrs``: the trial, the variant's provider/model/prompt_version, the dataset path and
  SHA-256, ``repeat``, the scorers, the judge's provider/model/prompt_version/prompt hash, the
  call's ``error_type`` and the SHA-256 of the answer; the answer itself (redacted) only when
  the experiment sets ``log_payloads``, as for live calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from abllm.errors import NotFound
from abllm.eval.model import RunInfo, StoredRun, Trial
from abllm.events import COLUMNS, MAX_BATCH_EVENTS, Event, EventStore, EventType
from abllm.events.schema import row_to_event
from abllm.gateway.measure import PAYLOAD_CHARS
from abllm.telemetry import redact

SCORE_PREFIX = "score."


def _event(
    info: RunInfo, trial: Trial, variants: dict[str, dict[str, str]], log_payloads: bool
) -> Event:
    attrs: dict[str, Any] = {
        "trial": trial.trial,
        **variants.get(trial.variant_id, {}),
        "dataset": info.dataset,
        "dataset_sha256": info.dataset_sha256,
        "repeat": info.repeat,
        "scorers": ",".join(info.scorers),
    }
    for key, value in (info.judge or {}).items():
        attrs[f"judge_{key}"] = value
    if trial.error_type is not None:
        attrs["error_type"] = trial.error_type
    if trial.judge_error is not None:
        attrs["judge_error"] = trial.judge_error[:200]
    if trial.output is not None:
        attrs["output_sha256"] = hashlib.sha256(trial.output.encode()).hexdigest()
        if log_payloads:  # as the gateway logs answers: redacted, cut to PAYLOAD_CHARS
            attrs["response"] = redact(trial.output)[:PAYLOAD_CHARS]
    return Event(
        ts=info.started,
        type=EventType.eval,
        experiment_id=info.experiment_id,
        experiment_version=info.experiment_version,
        variant_id=trial.variant_id,
        unit_id=trial.row_id,
        trace_id=info.run_id,
        metrics={f"{SCORE_PREFIX}{k}": v for k, v in trial.scores.items()},
        attrs=attrs,
    )


def save_run(
    store: EventStore,
    info: RunInfo,
    trials: Sequence[Trial],
    variants: dict[str, dict[str, str]],
    *,
    log_payloads: bool = False,
) -> int:
    """Append the run's events in batches; ``variants`` maps a variant id to its recorded
    ``provider``/``model``/``prompt_version``; ``log_payloads`` (the experiment's) also stores
    each answer, redacted. Returns the events stored."""
    events = [_event(info, t, variants, log_payloads) for t in trials]
    stored = 0
    for i in range(0, len(events), MAX_BATCH_EVENTS):
        stored += store.append(events[i : i + MAX_BATCH_EVENTS])
    return stored


def _judge_of(attrs: dict[str, Any]) -> dict[str, str] | None:
    judge = {
        k[6:]: str(v) for k, v in attrs.items() if k.startswith("judge_") and k != "judge_error"
    }
    return judge or None


def load_run(store: EventStore, run_id: str) -> StoredRun:
    """Read run ``run_id`` back; ``NotFound`` when the store holds no such run."""
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {store.events_relation} "  # noqa: S608
        "WHERE type = ? AND trace_id = ?"
    )
    events = [row_to_event(r) for r in store.query(sql, [EventType.eval.value, run_id])]
    if not events:
        raise NotFound(f"--compare-to {run_id}: no eval run with this id in the store")
    first = events[0]
    info = RunInfo(
        run_id=run_id,
        experiment_id=first.experiment_id,
        experiment_version=first.experiment_version,
        started=first.ts,
        dataset=str(first.attrs.get("dataset", "")),
        dataset_sha256=str(first.attrs.get("dataset_sha256", "")),
        repeat=int(first.attrs.get("repeat") or 1),
        scorers=tuple(str(first.attrs.get("scorers", "")).split(",")),
        judge=_judge_of(first.attrs),
    )
    trials = [
        Trial(
            row_id=e.unit_id,
            variant_id=e.variant_id or "",
            trial=int(e.attrs.get("trial") or 0),
            output=None,
            scores={
                k[len(SCORE_PREFIX) :]: float(v)
                for k, v in e.metrics.items()
                if k.startswith(SCORE_PREFIX) and v is not None
            },
            error_type=str(e.attrs["error_type"]) if "error_type" in e.attrs else None,
        )
        for e in events
    ]
    trials.sort(key=lambda t: (t.row_id, t.variant_id, t.trial))
    return StoredRun(info, trials)


def latest_run(
    store: EventStore, experiment_id: str, dataset_sha256: str | None = None
) -> str | None:
    """The id of the experiment's most recent run (of this dataset, when given), or None.

    One row per run comes back (``GROUP BY trace_id``); any event's attrs carry the run's
    dataset hash, as every event of a run has the same.
    """
    sql = (
        f"SELECT trace_id, max(ts), min(attrs) FROM {store.events_relation} "  # noqa: S608
        "WHERE type = ? AND experiment_id = ? GROUP BY trace_id"
    )
    best: tuple[datetime, str] | None = None
    for run_id, ts, attrs in store.query(sql, [EventType.eval.value, experiment_id]):
        recorded = json.loads(attrs or "{}").get("dataset_sha256")
        if dataset_sha256 is not None and recorded != dataset_sha256:
            continue
        moment = _utc(ts)
        if best is None or moment > best[0]:
            best = (moment, str(run_id))
    return None if best is None else best[1]


def last_run_at(store: EventStore, experiment_id: str) -> datetime | None:
    """When the experiment's most recent run started, or None."""
    sql = (
        f"SELECT max(ts) FROM {store.events_relation} "  # noqa: S608
        "WHERE type = ? AND experiment_id = ?"
    )
    rows = store.query(sql, [EventType.eval.value, experiment_id])
    return _utc(rows[0][0]) if rows and rows[0][0] is not None else None


def _utc(ts: Any) -> datetime:
    moment = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
