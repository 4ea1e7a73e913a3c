"""Event files: read JSONL, CSV and Parquet rows as events; export an experiment's events.

Readers yield ``(line, event | error)`` so a caller can report every bad row by line number and
choose to skip or reject, never drop silently. Rows may use the wire shape (``metrics`` and
``attrs`` objects, or JSON text in CSV/Parquet) or the flat table shape that ``export`` writes
(one column per well-known metric, ``extra`` and ``attrs`` as JSON text); CSV may also spell a
metric or attribute as a ``metrics.NAME`` / ``attrs.NAME`` column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from abllm.errors import AbllmError, ValidationError
from abllm.events.models import WELL_KNOWN_METRICS, Event, parse_event
from abllm.events.schema import COLUMNS, row_to_event
from abllm.events.store import EventStore

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
FORMATS[".parquet"] = "parquet"
_FIELDS = frozenset(
    {"event_id", "ts", "type", "experiment_id", "experiment_version", "variant_id", "unit_id"}
    | {"trace_id"}
)
_METRICS = frozenset(WELL_KNOWN_METRICS)


@dataclass(frozen=True)
class BadRow:
    """A row that failed validation: where it is and why."""

    line: int
    message: str


Row = tuple[int, Event | BadRow]


def detect_format(path: Path) -> str:
    """``jsonl``, ``csv`` or ``parquet`` from the file name."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValidationError(
            f"{path.name}: unknown file type {path.suffix or '(none)'}; "
            "use .jsonl, .csv or .parquet"
        )
    return fmt


def _json_object(value: Any, column: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):  # a Parquet map column arrives as [(key, value), ...]
        return dict(value)
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValidationError(f"{column} must be a JSON object")
    return parsed


def _csv_scalar(value: str) -> Any:
    """A CSV cell as a bool or number when it reads as one, else the text."""
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def flat_to_wire(record: dict[str, Any], from_csv: bool = False) -> dict[str, Any]:
    """A flat row (table or CSV layout) as the wire shape ``parse_event`` accepts."""
    out: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for key, value in record.items():
        if value is None or value == "":
            continue
        if key in _FIELDS:
            out[key] = str(value) if key == "event_id" else value
        elif key in ("metrics", "extra"):
            metrics.update(_json_object(value, key))
        elif key == "attrs":
            attrs.update(_json_object(value, key))
        elif key in _METRICS:
            metrics[key] = _csv_scalar(value) if from_csv else value
        elif key.startswith("metrics."):
            metrics[key[8:]] = _csv_scalar(value) if from_csv else value
        elif key.startswith("attrs."):
            attrs[key[6:]] = value
        else:
            raise ValidationError(
                f"unknown column {key!r} (expected event fields, well-known metrics, "
                "metrics.NAME or attrs.NAME)"
            )
    if metrics:
        out["metrics"] = metrics
    if attrs:
        out["attrs"] = attrs
    return out


def _guard(line: int, parse: Callable[[Any], dict[str, Any] | bytes], arg: Any) -> Row:
    """Validate one row; a failure becomes a ``BadRow`` carrying the line number."""
    try:
        return line, parse_event(parse(arg))
    except AbllmError as exc:
        return line, BadRow(line, exc.message)
    except (ValueError, TypeError) as exc:  # malformed JSON inside a cell
        return line, BadRow(line, f"invalid event: {exc}")


def _strip(raw: bytes) -> bytes:
    return raw.strip()


def _from_csv(record: dict[str, Any]) -> dict[str, Any]:
    return flat_to_wire(record, from_csv=True)


def read_jsonl(stream: IO[bytes]) -> Iterator[Row]:
    """One event per line; blank lines are skipped."""
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield _guard(number, _strip, raw)


def read_csv(stream: IO[str]) -> Iterator[Row]:
    """A header row, then one event per row; ``line`` is the physical line it starts on."""
    reader = csv.DictReader(stream)
    line = 2
    for record in reader:
        if None in record:  # more cells than header names
            header = len(reader.fieldnames or [])
            yield line, BadRow(line, f"row has more cells than the {header} header columns")
        else:
            yield _guard(line, _from_csv, record)
        line = reader.line_num + 1


def read_parquet(path: Path, batch_rows: int = 10_000) -> Iterator[Row]:
    """Rows of a Parquet file (``line`` is the 1-based row number)."""
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        for record in batch.to_pylist():
            number += 1
            yield _guard(number, flat_to_wire, record)


def read_events(
    path: Path, fmt: str, progress: Callable[[int], None] | None = None
) -> Iterator[Row]:
    """Rows of ``path`` in ``fmt``; ``progress(done)`` gets bytes read so far (rows: Parquet)."""
    if fmt == "parquet":
        for row in read_parquet(path):
            if progress and row[0] % 1000 == 0:
                progress(row[0])
            yield row
        return
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="") if fmt == "csv" else None
        rows = read_jsonl(raw) if text is None else read_csv(text)
        for row in rows:
            if progress and row[0] % 1000 == 0:
                progress(raw.tell())
            yield row
        if progress:
            progress(raw.tell())
        if text is not None:
            text.detach()  # so that collecting the wrapper does not close ``raw`` under us


# -- export ----------------------------------------------------------------------------------

EXPORT_PAGE = 50_000


def iter_experiment_rows(store: EventStore, experiment_id: str) -> Iterator[list[tuple[Any, ...]]]:
    """Pages of one experiment's rows in ``COLUMNS`` order, by (ts, event_id) keyset paging."""
    rel = store.events_relation
    cols = ", ".join(COLUMNS)
    first = (
        f"SELECT {cols} FROM {rel} WHERE experiment_id = ? "  # noqa: S608
        f"ORDER BY ts, event_id LIMIT {EXPORT_PAGE}"
    )
    after = (
        f"SELECT {cols} FROM {rel} WHERE experiment_id = ? "  # noqa: S608
        "AND (ts > ? OR (ts = ? AND event_id > ?)) "
        f"ORDER BY ts, event_id LIMIT {EXPORT_PAGE}"
    )
    page = store.query(first, [experiment_id])
    while page:
        yield page
        if len(page) < EXPORT_PAGE:
            return
        last_ts, last_id = page[-1][1], page[-1][0]
        page = store.query(after, [experiment_id, last_ts, last_ts, last_id])


def export_jsonl(store: EventStore, experiment_id: str, out: IO[str]) -> int:
    """Write the experiment's events as JSON lines (the wire shape); returns the count."""
    n = 0
    for page in iter_experiment_rows(store, experiment_id):
        out.writelines(row_to_event(row).model_dump_json() + "\n" for row in page)
        n += len(page)
    return n


def _arrow_schema() -> Any:
    import pyarrow as pa

    types = {"ts": pa.timestamp("us", tz="UTC"), "experiment_version": pa.int32()}
    types.update({name: pa.float64() for name in WELL_KNOWN_METRICS})
    return pa.schema([(name, types.get(name, pa.string())) for name in COLUMNS])


def export_parquet(store: EventStore, experiment_id: str, path: Path) -> int:
    """Write the experiment's rows (table layout, ``COLUMNS``) to a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        for page in iter_experiment_rows(store, experiment_id):
            columns = [list(col) for col in zip(*page, strict=True)]
            columns[0] = [str(v) for v in columns[0]]  # UUID -> text
            columns[4] = [int(v) for v in columns[4]]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            n += len(page)
    return n
