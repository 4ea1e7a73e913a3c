"""Embedded default store: one DuckDB file, every write through one writer thread.

Why DuckDB rather than SQLite (measured in docs/events.md): analysis runs exact quantiles and
GROUP BY over millions of rows inside the engine, where DuckDB is 35-100x faster, and Arrow
batches reach SQLite's write speed. ``executemany`` is slow in DuckDB, so batches are always
inserted from an Arrow table into the ``event_id`` primary key; ``INSERT OR IGNORE`` (used when a
plain insert meets a duplicate) deduplicates both within a batch and against stored rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from abllm.errors import StoreUnavailable, ValidationError
from abllm.events.models import Event
from abllm.events.schema import COLUMNS, SCHEMA_VERSION_TABLE, TABLE, column_ddl, to_arrow
from abllm.events.store import missing_driver
from abllm.events.writer import SingleWriter

# S608 below: f-strings only splice module-constant identifiers; values are always bound.

#: Versioned migrations: (version, statements). Append new versions; never edit old ones.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (f"CREATE TABLE {TABLE} ({', '.join(column_ddl('duckdb'))}, PRIMARY KEY (event_id))",),
    ),
)

_SELECT_STAGED = ", ".join(
    "CAST(event_id AS UUID)" if name == "event_id" else name for name in COLUMNS
)
_INSERT = f"INSERT INTO {TABLE} SELECT {_SELECT_STAGED} FROM _abllm_staging"  # noqa: S608
_INSERT_OR_IGNORE = _INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a core dependency
        raise missing_driver("duckdb", "all") from None
    return duckdb


class DuckDBStore:
    """``EventStore`` on a DuckDB file (or ``:memory:``); see the module docstring for why."""

    dialect = "duckdb"
    events_relation = TABLE

    def __init__(self, path: str = ":memory:") -> None:
        duckdb = _duckdb()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(path)
        except duckdb.IOException as exc:
            # Another process holds the file: DuckDB allows one writing process per file.
            raise StoreUnavailable(f"cannot open DuckDB store {path}: {exc}") from None
        self.path = path
        self._conn.execute("SET TimeZone = 'UTC'")
        self._migrate()
        self._write_cursor = self._conn.cursor()
        self._writer: SingleWriter[Any] = SingleWriter(f"duckdb:{path}", self._write_group)

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} "
            "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())"
        )
        row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA_VERSION_TABLE}")  # noqa: S608
        current = int(row.fetchone()[0])
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            conn.execute("BEGIN")
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"INSERT INTO {SCHEMA_VERSION_TABLE} (version) VALUES (?)", [version])  # noqa: S608
            conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """Highest applied migration."""
        return int(self.query(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE}")[0][0])  # noqa: S608

    def _write_group(self, tables: Sequence[Any]) -> list[int]:
        """Write batches in one transaction, optimistically without conflict handling.

        A plain INSERT into the primary key costs half the CPU of ``INSERT OR IGNORE``
        (measured), and duplicates are rare (retries, replays), so the group is first written
        plainly; on a key conflict DuckDB aborts the transaction and the group is redone with
        ``INSERT OR IGNORE``.
        """
        try:
            return self._insert_all(tables, _INSERT)
        except _duckdb().ConstraintException:
            return self._insert_all(tables, _INSERT_OR_IGNORE)

    def _insert_all(self, tables: Sequence[Any], statement: str) -> list[int]:
        cur = self._write_cursor
        counts: list[int] = []
        cur.execute("BEGIN")
        try:
            for table in tables:
                cur.register("_abllm_staging", table)  # replaces the previous batch's view
                counts.append(int(cur.execute(statement).fetchone()[0]))
            cur.execute("COMMIT")  # a key conflict may only surface here
        except Exception:
            with contextlib.suppress(_duckdb().Error):  # a failed COMMIT already rolled back
                cur.execute("ROLLBACK")
            raise
        finally:
            with contextlib.suppress(_duckdb().Error):
                cur.unregister("_abllm_staging")  # do not keep the last batch alive
        return counts

    def append(self, events: Sequence[Event]) -> int:
        """Insert ``events``, ignoring ids already stored; returns the rows added.

        An I/O failure (disk full, file gone) raises ``StoreUnavailable`` (the pipeline spools
        and retries); a value the engine refuses propagates as it is (the pipeline
        dead-letters the events responsible).
        """
        if not events:
            return 0
        try:
            return self._writer.write(to_arrow(events))
        except _duckdb().IOException as exc:
            raise StoreUnavailable(f"DuckDB write failed: {exc}") from None

    def append_arrow(self, table: Any) -> int:
        """Insert a ``pyarrow.Table`` already in ``COLUMNS`` order (bulk import path)."""
        return self._writer.write(table)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL (``?`` placeholders) on a fresh cursor, so reads never block the writer."""
        try:
            with self._conn.cursor() as cur:
                return [tuple(row) for row in cur.execute(sql, list(params)).fetchall()]
        except _duckdb().Error as exc:
            raise ValidationError(f"query failed: {exc}") from None

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Like ``query`` but returns a ``pyarrow.Table`` (for export)."""
        with self._conn.cursor() as cur:
            # ``sql().to_arrow_table()``: DuckDB 2 dropped ``fetch_arrow_table`` on results
            return cur.sql(sql, params=list(params)).to_arrow_table()

    def count(self, experiment_id: str | None = None) -> int:
        """Stored events (``event_id`` is the primary key, so every row is distinct)."""
        if experiment_id is None:
            return int(self.query(f"SELECT count(*) FROM {TABLE}")[0][0])  # noqa: S608
        sql = f"SELECT count(*) FROM {TABLE} WHERE experiment_id = ?"  # noqa: S608
        return int(self.query(sql, [experiment_id])[0][0])

    def close(self) -> None:
        """Finish queued writes, checkpoint and close the file."""
        self._writer.close()
        self._write_cursor.close()
        self._conn.close()

    def __repr__(self) -> str:
        return f"DuckDBStore({self.path!r})"
