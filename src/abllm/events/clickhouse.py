"""ClickHouse stores: ``chdb`` (the engine in-process) and a real server via clickhouse-connect.

Both use the same table: a ``ReplacingMergeTree`` ordered by ``(experiment_id, type, unit_id,
event_id)``, so per-unit aggregation reads sorted data and a repeated ``event_id`` (whose
experiment, type and unit never change) collapses when parts merge. Merges happen later, so
until then duplicates may be on disk: ``append`` skips ids already stored (a bloom-filter skip
index keeps that lookup cheap) and every read goes through ``events_relation``, a ``FINAL``
subquery that deduplicates at read time. Analysis SQL must select ``FROM
{store.events_relation}``, never from the bare table.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from abllm.errors import StoreUnavailable, ValidationError
from abllm.events.migration import Migration
from abllm.events.models import WELL_KNOWN_METRICS, Event
from abllm.events.schema import COLUMNS, SCHEMA_VERSION_TABLE, TABLE, to_arrow
from abllm.events.sqlparams import inline_params
from abllm.events.store import missing_driver
from abllm.events.writer import SingleWriter

# S608 below: f-strings only splice module-constant identifiers; values are always inlined
# through ``inline_params`` as escaped literals.

_TYPES = {
    "event_id": "UUID",
    "ts": "DateTime64(6, 'UTC')",
    "type": "LowCardinality(String)",
    "experiment_id": "LowCardinality(String)",
    "experiment_version": "Int32",
    "variant_id": "LowCardinality(Nullable(String))",
    "unit_id": "String",
    "trace_id": "Nullable(String)",
    **{name: "Nullable(Float64)" for name in WELL_KNOWN_METRICS},
    "extra": "Nullable(String)",
    "attrs": "Nullable(String)",
}
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            + ", ".join(f"{name} {_TYPES[name]}" for name in COLUMNS)
            + ", INDEX event_id_bf event_id TYPE bloom_filter(0.001) GRANULARITY 1"
            + ") ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) "
            "ORDER BY (experiment_id, type, unit_id, event_id) "
            # An acknowledged insert must survive a power cut: fsync each new part.
            "SETTINGS fsync_after_insert = 1, fsync_part_directory = 1",
        ),
    ),
)
#: What analysis selects from: rows deduplicated at read time, whether or not parts merged.
EVENTS_RELATION = f"(SELECT * FROM {TABLE} FINAL)"  # noqa: S608
_IDS_PER_LOOKUP = 2000
_STAGED = ", ".join("toUUID(event_id)" if c == "event_id" else c for c in COLUMNS)


class _ClickHouseStore(ABC):
    """Shared SQL; subclasses provide the transport: ``_command``, ``_rows`` and ``_insert``."""

    dialect = "clickhouse"
    events_relation = EVENTS_RELATION

    def __init__(self, name: str, *, defer_connect: bool = False) -> None:
        self._lock = threading.RLock()  # one statement at a time on the connection
        self._migration = Migration(self._migrate, self._lock)
        self._migration.at_open("ClickHouse", defer_connect=defer_connect)
        self._writer: SingleWriter[Any] = SingleWriter(name, self._write_group)

    @abstractmethod
    def _command(self, sql: str) -> None:
        """Transport primitive."""

    @abstractmethod
    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Transport primitive."""

    @abstractmethod
    def _insert(self, table: Any) -> None:
        """Transport primitive."""

    def _migrate(self) -> None:
        """Apply missing migrations. ClickHouse has no advisory lock, so processes starting
        together may both run them: every statement is ``IF NOT EXISTS`` (tested), and the
        version table's ReplacingMergeTree folds a version row inserted twice."""
        self._command(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (version Int32, "
            "applied_at DateTime64(6, 'UTC') DEFAULT now64(6)) ENGINE = ReplacingMergeTree "
            "ORDER BY version"
        )
        current = self._rows(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE} FINAL")[0][0]  # noqa: S608
        for version, statements in MIGRATIONS:
            if version > int(current or 0):
                for statement in statements:
                    self._command(statement)
                self._command(f"INSERT INTO {SCHEMA_VERSION_TABLE} (version) VALUES ({version})")  # noqa: S608

    @property
    def schema_version(self) -> int:
        """Highest applied migration."""
        return int(self.query(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE} FINAL")[0][0])  # noqa: S608

    def _write_group(self, tables: Sequence[Any]) -> list[int]:
        import pyarrow as pa

        self._migration.ensure()
        counts = []
        for table in tables:
            ids = table.column("event_id").to_pylist()
            existing: set[str] = set()
            for start in range(0, len(ids), _IDS_PER_LOOKUP):  # stay under max_query_size
                quoted = ",".join(f"'{UUID(hex=i)}'" for i in ids[start : start + _IDS_PER_LOOKUP])
                sql = f"SELECT event_id FROM {TABLE} WHERE event_id IN ({quoted})"  # noqa: S608
                existing.update(row[0].hex for row in self._rows(sql))
            keep, seen = [], set(existing)
            for pos, event_id in enumerate(ids):
                if event_id not in seen:
                    seen.add(event_id)
                    keep.append(pos)
            if keep:
                self._insert(table if len(keep) == len(ids) else table.take(pa.array(keep)))
            counts.append(len(keep))
        return counts

    def append(self, events: Sequence[Event]) -> int:
        """Insert events whose ``event_id`` is not stored yet; returns rows added."""
        if not events:
            return 0
        return self._writer.write(to_arrow(events))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL; ``?`` placeholders are filled with escaped ClickHouse literals."""
        self._migration.ensure()
        return self._rows(inline_params(sql, params) if params else sql)

    def count(self, experiment_id: str | None = None) -> int:
        """Distinct stored events (read through ``FINAL``)."""
        if experiment_id is None:
            return int(self.query(f"SELECT count() FROM {EVENTS_RELATION}")[0][0])  # noqa: S608
        sql = f"SELECT count() FROM {EVENTS_RELATION} WHERE experiment_id = ?"  # noqa: S608
        return int(self.query(sql, [experiment_id])[0][0])

    def optimize(self) -> None:
        """Force the merge that removes duplicates on disk (``OPTIMIZE ... FINAL``)."""
        with self._lock:
            self._command(f"OPTIMIZE TABLE {TABLE} FINAL")


_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")


def _convert(value: Any, ch_type: str) -> Any:
    """A JSONCompact value as the Python type a DB-API driver would return."""
    while (m := _WRAPPER.match(ch_type)) is not None:
        ch_type = m.group(1)
    if value is None:
        return None
    if ch_type.startswith("DateTime"):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if ch_type.startswith("Date"):
        return date.fromisoformat(value)
    if ch_type == "UUID":
        return UUID(value)
    if ch_type.startswith(("Int", "UInt")) and isinstance(value, str):
        return int(value)
    if ch_type.startswith("Float"):
        return float(value)  # JSON writes 1.0 as 1; "inf"/"nan" arrive quoted
    return value


def _clickhouse_connect_errors() -> Any:
    from clickhouse_connect.driver import exceptions

    return exceptions


def _chdb() -> Any:
    try:
        import chdb
    except ImportError:
        raise missing_driver("chdb", "clickhouse") from None
    return chdb


class ChdbStore(_ClickHouseStore):
    """ClickHouse's engine in-process (``chdb:///path``); one open path per process (chdb)."""

    def __init__(self, path: str = ":memory:") -> None:
        chdb = _chdb()
        try:
            self._conn = chdb.connect(path)
        except Exception as exc:  # chdb raises a bare RuntimeError for a second path
            raise StoreUnavailable(f"cannot open chdb store {path}: {exc}") from None
        self.path = path
        self._conn.query("SET session_timezone = 'UTC'")
        super().__init__(f"chdb:{path}")

    def _command(self, sql: str) -> None:
        with self._lock:
            self._conn.query(sql)

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                result = self._conn.query(sql, "JSONCompact")
            except Exception as exc:
                raise ValidationError(f"query failed: {exc}") from None
        raw = result.bytes()
        if not raw:
            return []
        doc = json.loads(raw)
        types = [col["type"] for col in doc["meta"]]
        return [
            tuple(_convert(v, t) for v, t in zip(row, types, strict=True)) for row in doc["data"]
        ]

    def _insert(self, table: Any) -> None:
        _abllm_batch = table  # chdb's Python() table function finds the Arrow table by name
        with self._lock:
            self._conn.query(
                f"INSERT INTO {TABLE} SELECT {_STAGED} FROM Python(_abllm_batch)"  # noqa: S608
            )

    def close(self) -> None:
        """Finish queued writes and close the session (frees the process-wide chdb slot)."""
        self._writer.close()
        with self._lock:
            self._conn.close()


def _clickhouse_connect() -> Any:
    try:
        import clickhouse_connect
    except ImportError:
        raise missing_driver("clickhouse-connect", "clickhouse") from None
    return clickhouse_connect


class ClickHouseServerStore(_ClickHouseStore):
    """A ClickHouse server over HTTP (``clickhouse://user:pass@host:8123/db``).

    Needs a server recent enough for ``DateTime64`` and clickhouse-connect (21.8+; tested
    SQL on chdb's 25.x engine). Debian's 18.16 package is not supported.
    """

    def __init__(self, url: str, *, defer_connect: bool = False) -> None:
        self._driver = _clickhouse_connect()
        self._parts = urlsplit(url)
        self._connected: Any = None
        super().__init__(f"clickhouse:{self._parts.hostname}", defer_connect=defer_connect)

    @property
    def _client(self) -> Any:
        """The clickhouse-connect client, made on first use (``get_client`` pings the server)."""
        if self._connected is None:
            parts = self._parts
            try:
                self._connected = self._driver.get_client(
                    host=parts.hostname or "localhost",
                    port=parts.port or 8123,
                    username=parts.username or "default",
                    password=parts.password or "",
                    database=parts.path.lstrip("/") or "default",
                    secure=parts.scheme == "clickhouses",
                )
            except Exception as exc:
                raise StoreUnavailable(f"cannot connect to ClickHouse: {exc}") from None
        return self._connected

    def _command(self, sql: str) -> None:
        unavailable = _clickhouse_connect_errors().OperationalError
        with self._lock:
            try:
                self._client.command(sql)
            except unavailable as exc:
                raise StoreUnavailable(f"ClickHouse command failed: {exc}") from None

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        unavailable = _clickhouse_connect_errors().OperationalError
        with self._lock:
            try:
                return [tuple(row) for row in self._client.query(sql).result_rows]
            except unavailable as exc:  # connection refused, reset or timed out: retry later
                raise StoreUnavailable(f"ClickHouse query failed: {exc}") from None
            except Exception as exc:
                raise ValidationError(f"query failed: {exc}") from None

    def _insert(self, table: Any) -> None:
        # Column-oriented Python values: clickhouse-connect encodes UUID and DateTime64 itself.
        columns = [table.column(name).to_pylist() for name in COLUMNS]
        columns[0] = [UUID(hex=value) for value in columns[0]]
        unavailable = _clickhouse_connect_errors().OperationalError
        with self._lock:
            try:
                self._client.insert(
                    TABLE, columns, column_names=list(COLUMNS), column_oriented=True
                )
            except unavailable as exc:
                raise StoreUnavailable(f"ClickHouse write failed: {exc}") from None

    def close(self) -> None:
        """Finish queued writes and close the HTTP client."""
        self._writer.close()
        if self._connected is not None:
            self._connected.close()
