"""The ``abllm_events`` table, identical on every backend, and events -> columns conversion.

Each well-known metric has its own nullable DOUBLE column so that analysis SQL aggregates a
plain column (booleans become 1.0/0.0); other metrics go into ``extra`` and attributes into
``attrs``, both JSON text (NULL when empty).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core

from abllm.events.models import WELL_KNOWN_METRICS, Event

TABLE = "abllm_events"
SCHEMA_VERSION_TABLE = "abllm_schema_version"

BASE_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "type",
    "experiment_id",
    "experiment_version",
    "variant_id",
    "unit_id",
    "trace_id",
)
#: Every column of ``abllm_events``, in table order.
COLUMNS: tuple[str, ...] = (*BASE_COLUMNS, *WELL_KNOWN_METRICS, "extra", "attrs")
_METRIC_INDEX = {name: i for i, name in enumerate(WELL_KNOWN_METRICS)}


@dataclass(frozen=True)
class Columns:
    """A batch of events as one Python list per column (what Arrow, COPY and chdb consume)."""

    event_id: list[str]  # 32 hex digits
    ts: list[datetime]
    type: list[str]
    experiment_id: list[str]
    experiment_version: list[int]
    variant_id: list[str | None]
    unit_id: list[str]
    trace_id: list[str | None]
    metrics: list[list[float | None]]  # one list per WELL_KNOWN_METRICS entry
    extra: list[str | None]
    attrs: list[str | None]

    def as_lists(self) -> list[list[Any]]:
        """Columns in ``COLUMNS`` order."""
        base: list[list[Any]] = [
            self.event_id,
            self.ts,
            self.type,
            self.experiment_id,
            self.experiment_version,
            self.variant_id,
            self.unit_id,
            self.trace_id,
        ]
        return [*base, *self.metrics, self.extra, self.attrs]

    def rows(self) -> list[tuple[Any, ...]]:
        """Row tuples in ``COLUMNS`` order (for COPY and row-wise drivers)."""
        return list(zip(*self.as_lists(), strict=True))


def to_columns(events: Sequence[Event]) -> Columns:
    """Split events into columns in one pass; unknown metrics go to ``extra`` as JSON.

    Hot path of every ingest: ids are 32-char hex (cheaper than ``str(uuid)``, accepted by
    every engine's UUID parser) and JSON is encoded by pydantic-core in Rust.
    """
    n = len(events)
    metrics: list[list[float | None]] = [[None] * n for _ in WELL_KNOWN_METRICS]
    extra: list[str | None] = [None] * n
    attrs: list[str | None] = [None] * n
    to_json = pydantic_core.to_json
    index = _METRIC_INDEX
    for i, event in enumerate(events):
        rest: dict[str, Any] | None = None
        for name, value in event.metrics.items():
            j = index.get(name)
            if j is None:
                if rest is None:
                    rest = {}
                rest[name] = value
            elif value is not None:
                metrics[j][i] = float(value)
        if rest:
            extra[i] = to_json(rest).decode()
        if event.attrs:
            attrs[i] = to_json(event.attrs).decode()
    return Columns(
        event_id=[e.event_id.hex for e in events],
        ts=[e.ts for e in events],
        type=[e.type.value for e in events],
        experiment_id=[e.experiment_id for e in events],
        experiment_version=[e.experiment_version for e in events],
        variant_id=[e.variant_id for e in events],
        unit_id=[e.unit_id for e in events],
        trace_id=[e.trace_id for e in events],
        metrics=metrics,
        extra=extra,
        attrs=attrs,
    )


def row_to_event(row: Sequence[Any]) -> Event:
    """Rebuild an ``Event`` from a row in ``COLUMNS`` order (for export and replay checks)."""
    values = dict(zip(COLUMNS, row, strict=True))
    metrics: dict[str, Any] = {}
    for name in WELL_KNOWN_METRICS:
        value = values[name]
        if value is not None:
            number = float(value)
            metrics[name] = int(number) if number.is_integer() else number
    extra = values["extra"]
    if extra:
        metrics.update(json.loads(extra))
    attrs = json.loads(values["attrs"]) if values["attrs"] else {}
    return Event(
        event_id=values["event_id"],
        ts=values["ts"],
        type=values["type"],
        experiment_id=values["experiment_id"],
        experiment_version=values["experiment_version"],
        variant_id=values["variant_id"],
        unit_id=values["unit_id"],
        trace_id=values["trace_id"],
        metrics=metrics,
        attrs=attrs,
    )


_SQL_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {
        "uuid": "UUID",
        "ts": "TIMESTAMPTZ",
        "text": "VARCHAR",
        "int": "INTEGER",
        "double": "DOUBLE",
    },
    "postgres": {
        "uuid": "uuid",
        "ts": "timestamptz",
        "text": "text",
        "int": "integer",
        "double": "double precision",
    },
}
_KINDS: dict[str, str] = {
    "event_id": "uuid",
    "ts": "ts",
    "experiment_version": "int",
    **{name: "double" for name in WELL_KNOWN_METRICS},
}
_NOT_NULL = frozenset({"event_id", "ts", "type", "experiment_id", "experiment_version", "unit_id"})


def column_ddl(dialect: str) -> list[str]:
    """``name TYPE [NOT NULL]`` for each column, for ``duckdb`` or ``postgres``."""
    types = _SQL_TYPES[dialect]
    return [
        f"{name} {types[_KINDS.get(name, 'text')]}{' NOT NULL' if name in _NOT_NULL else ''}"
        for name in COLUMNS
    ]


def to_arrow(events: Sequence[Event]) -> Any:
    """Events as a ``pyarrow.Table`` in ``COLUMNS`` order (event_id as text, ts in UTC)."""
    import pyarrow as pa

    cols = to_columns(events)
    string, double = pa.string(), pa.float64()
    arrays = [
        pa.array(cols.event_id, string),
        # Inferring the type is ~8x faster than converting aware datetimes to a given type.
        pa.array(cols.ts).cast(pa.timestamp("us", tz="UTC")),
        pa.array(cols.type, string),
        pa.array(cols.experiment_id, string),
        pa.array(cols.experiment_version, pa.int32()),
        pa.array(cols.variant_id, string),
        pa.array(cols.unit_id, string),
        pa.array(cols.trace_id, string),
        *(pa.array(values, double) for values in cols.metrics),
        pa.array(cols.extra, string),
        pa.array(cols.attrs, string),
    ]
    return pa.Table.from_arrays(arrays, names=list(COLUMNS))
