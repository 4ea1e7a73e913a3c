"""PostgreSQL store (psycopg 3): COPY into a staging table, then one deduplicating INSERT.

Row-by-row ``INSERT`` commits manage a few thousand rows/s; ``COPY`` into a temporary staging
table followed by ``INSERT ... SELECT DISTINCT ON (event_id) ... ON CONFLICT DO NOTHING`` keeps
the write idempotent at COPY speed. Groups of batches queued behind a commit share one
transaction (see ``writer``). The URL may carry ``?schema=NAME`` to keep the tables in their own
schema (created if missing); other query parameters go to libpq.

Every write and query runs under a client-side deadline: a server that stops answering (frozen,
a network partition that drops nothing, a lock wait) would otherwise block a thread for as long as
it lasts, since the kernel keeps acknowledging the socket and neither ``statement_timeout`` nor TCP
keepalives fire. When the deadline passes, the connection's socket is shut down, the call fails
with ``StoreUnavailable`` and the pipeline spools. Errors are classified by SQLSTATE: data
exceptions (class 22) and integrity violations (class 23), and values the driver cannot encode,
are the data's fault and propagate as they are (the pipeline dead-letters those events); anything
else means the store is unavailable right now and is retried.

``defer_connect=True`` opens the store while the server is down (``abllm serve`` during an
outage): the schema is created on the first successful connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from abllm.errors import StoreUnavailable, ValidationError
from abllm.events.migration import Migration
from abllm.events.models import WELL_KNOWN_METRICS, Event
from abllm.events.schema import (
    COLUMNS,
    SCHEMA_VERSION_TABLE,
    TABLE,
    Columns,
    column_ddl,
    to_columns,
)
from abllm.events.sqlparams import translate_qmark
from abllm.events.store import missing_driver
from abllm.events.writer import SingleWriter

# S608 below: f-strings only splice module-constant identifiers; values are always bound.

#: Versioned migrations: (version, statements). Append new versions; never edit old ones.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            f"CREATE TABLE {TABLE} ({', '.join(column_ddl('postgres'))}, PRIMARY KEY (event_id))",
            # Analysis groups by experiment, event type and unit, and filters by time.
            f"CREATE INDEX {TABLE}_exp_type_unit ON {TABLE} (experiment_id, type, unit_id)",
            # BRIN: near-free to maintain for append-mostly time data, prunes time ranges.
            f"CREATE INDEX {TABLE}_ts ON {TABLE} USING brin (ts)",
        ),
    ),
)
_COLS = ", ".join(COLUMNS)
_STAGING = "abllm_staging"
_CREATE_STAGING = f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (LIKE {TABLE}) ON COMMIT DELETE ROWS"
_COPY_DIRECT = f"COPY {TABLE} ({_COLS}) FROM STDIN (FORMAT BINARY)"
_COPY_STAGING = f"COPY {_STAGING} ({_COLS}) FROM STDIN (FORMAT BINARY)"
_INSERT_DEDUP = (
    f"INSERT INTO {TABLE} ({_COLS}) SELECT DISTINCT ON (event_id) {_COLS} "  # noqa: S608
    f"FROM {_STAGING} ON CONFLICT (event_id) DO NOTHING"
)
#: Binary COPY types in COLUMNS order (binary skips text parsing on the server).
_COPY_TYPES = (
    ["uuid", "timestamptz", "text", "text", "int4", "text", "text", "text"]
    + ["float8"] * len(WELL_KNOWN_METRICS)
    + ["text", "text"]
)
#: ``pg_advisory_xact_lock(hashtext(key))`` serialises DDL per schema across processes: two
#: ``CREATE ... IF NOT EXISTS`` racing each other fail on pg_namespace/pg_type unique keys. The
#: state, sticky and lease tables take the same key, so all of abllm's DDL in one schema queues.
_MIGRATION_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext(%s))"
#: SQLSTATE classes caused by the data written: data exception, integrity constraint violation.
_DATA_ERROR_CLASSES = ("22", "23")


#: A batch for the writer: ids as UUID objects (binary COPY) and the other columns.
_Batch = tuple[list[UUID], Columns]


def _copy(cur: Any, statement: str, batch: _Batch) -> None:
    ids, cols = batch
    with cur.copy(statement) as copy:
        copy.set_types(_COPY_TYPES)
        for row in zip(ids, *cols.as_lists()[1:], strict=True):
            copy.write_row(row)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise missing_driver("psycopg", "postgres") from None
    return psycopg


def _split_url(url: str) -> tuple[str, str | None]:
    """Remove ``schema=`` from the URL's query string; return (libpq URL, schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    if schema is not None and not schema.replace("_", "").isalnum():
        raise ValidationError(f"store URL schema={schema!r}: use letters, digits and _ only")
    return urlunsplit(parts._replace(query=rest)), schema


def _shutdown_socket(conn: Any) -> None:
    """Make the call blocked on ``conn`` fail now (another thread may be inside libpq)."""
    with contextlib.suppress(Exception):
        dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            dup.shutdown(socket.SHUT_RDWR)  # acts on the socket itself, not just this fd
        finally:
            dup.close()


@contextlib.contextmanager
def _deadline(conn: Any, seconds: float) -> Iterator[threading.Event]:
    """Shut ``conn``'s socket down if the block still runs after ``seconds``; the yielded
    event tells whether that happened (so the error can say "timed out")."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        _shutdown_socket(conn)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


class PostgresStore:
    """``EventStore`` on PostgreSQL; see the module docstring for the write path and timeouts."""

    dialect = "postgres"
    events_relation = TABLE

    def __init__(
        self,
        url: str,
        connect_timeout_s: float = 3.0,
        write_timeout_s: float = 3.0,
        query_timeout_s: float = 30.0,
        *,
        defer_connect: bool = False,
    ) -> None:
        self._psycopg = _psycopg()
        self._dsn, self.schema = _split_url(url)
        self._lock_key = f"abllm:{self.schema or 'public'}"
        self._timeout = connect_timeout_s
        self.write_timeout_s = write_timeout_s
        self.query_timeout_s = query_timeout_s
        self._write_conn: Any = None
        self._read_conn: Any = None
        self._read_lock = threading.Lock()
        self._migration = Migration(self._migrate, threading.Lock())
        self._migration.at_open("PostgreSQL", defer_connect=defer_connect)
        self._writer: SingleWriter[_Batch] = SingleWriter("postgres", self._write_group)

    def _connect(self) -> Any:
        self._migration.ensure()
        return self._open()

    def _open(self) -> Any:
        try:
            conn = self._psycopg.connect(self._dsn, connect_timeout=max(1, int(self._timeout)))
        except self._psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}".strip()) from None
        if self.schema:
            with conn.transaction():
                conn.execute(_MIGRATION_LOCK_SQL, [self._lock_key])
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET search_path TO "{self.schema}"')
            conn.commit()
        return conn

    def _migrate(self) -> None:
        conn = self._open()
        try:
            with conn.transaction():
                conn.execute(_MIGRATION_LOCK_SQL, [self._lock_key])
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} "
                    "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                row = conn.execute(
                    f"SELECT coalesce(max(version), 0) FROM {SCHEMA_VERSION_TABLE}"  # noqa: S608
                ).fetchone()
                for version, statements in MIGRATIONS:
                    if version > int(row[0]):
                        for statement in statements:
                            conn.execute(statement)
                        conn.execute(
                            f"INSERT INTO {SCHEMA_VERSION_TABLE} (version) VALUES (%s)",  # noqa: S608
                            [version],
                        )
        finally:
            conn.close()

    @property
    def schema_version(self) -> int:
        """Highest applied migration."""
        return int(self.query(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE}")[0][0])  # noqa: S608

    # -- writes (writer thread only) ---------------------------------------------------------

    def _write_group(self, batches: Sequence[_Batch]) -> list[int]:
        """Write batches in one transaction: COPY straight into the table, optimistically.

        Duplicates are rare (a retry or a replay after an unclear commit), so each batch is
        first COPYed directly into ``abllm_events`` inside a savepoint; only when that hits the
        primary key does the batch go through the staging table and ``ON CONFLICT DO NOTHING``.
        """
        conn = self._write_conn
        if conn is None or conn.closed or conn.broken:
            conn = self._write_conn = self._connect()
            with _deadline(conn, self.write_timeout_s):
                conn.execute(_CREATE_STAGING)
                conn.commit()
        unique_violation = self._psycopg.errors.UniqueViolation
        with _deadline(conn, self.write_timeout_s) as timed_out:
            try:
                counts: list[int] = []
                with conn.transaction(), conn.cursor() as cur:
                    for batch in batches:
                        try:
                            with conn.transaction():  # a savepoint
                                _copy(cur, _COPY_DIRECT, batch)
                            counts.append(len(batch[0]))
                        except unique_violation:
                            _copy(cur, _COPY_STAGING, batch)
                            cur.execute(_INSERT_DEDUP)
                            counts.append(max(cur.rowcount, 0))
                            cur.execute(f"TRUNCATE {_STAGING}")
                return counts
            except self._psycopg.Error as exc:
                if not timed_out.is_set() and self._is_data_error(exc):
                    raise  # the pipeline sets the events responsible aside
                conn.close()
                self._write_conn = None
                if timed_out.is_set():
                    raise StoreUnavailable(
                        f"PostgreSQL write timed out after {self.write_timeout_s:g} s"
                    ) from None
                raise StoreUnavailable(f"PostgreSQL write failed: {exc}".strip()) from None

    def _is_data_error(self, exc: Any) -> bool:
        state = exc.sqlstate
        if state is None:  # raised by the driver itself, e.g. a NUL it cannot send
            return isinstance(exc, self._psycopg.DataError)
        return str(state)[:2] in _DATA_ERROR_CLASSES

    def append(self, events: Sequence[Event]) -> int:
        """COPY ``events`` in and keep the ones whose ``event_id`` is new; returns rows added."""
        if not events:
            return 0
        return self._writer.write(([e.event_id for e in events], to_columns(events)))

    # -- reads -------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL with ``?`` placeholders (translated to psycopg's ``%s``)."""
        psycopg = self._psycopg
        with self._read_lock:
            for attempt in (1, 2):
                conn = self._read_conn
                if conn is None or conn.closed or conn.broken:
                    conn = self._read_conn = self._connect()
                    conn.autocommit = True
                try:
                    with _deadline(conn, self.query_timeout_s) as timed_out:
                        cur = conn.execute(translate_qmark(sql), list(params))
                        return [tuple(row) for row in cur.fetchall()] if cur.description else []
                except psycopg.OperationalError as exc:
                    conn.close()
                    self._read_conn = None
                    if timed_out.is_set():
                        raise StoreUnavailable(
                            f"PostgreSQL query timed out after {self.query_timeout_s:g} s"
                        ) from None
                    if attempt == 2:
                        raise StoreUnavailable(f"PostgreSQL query failed: {exc}".strip()) from None
                except psycopg.Error as exc:
                    raise ValidationError(f"query failed: {exc}".strip()) from None
        raise StoreUnavailable("PostgreSQL query failed")  # pragma: no cover - loop returns

    def count(self, experiment_id: str | None = None) -> int:
        """Stored events (``event_id`` is the primary key, so every row is distinct)."""
        if experiment_id is None:
            return int(self.query(f"SELECT count(*) FROM {TABLE}")[0][0])  # noqa: S608
        sql = f"SELECT count(*) FROM {TABLE} WHERE experiment_id = ?"  # noqa: S608
        return int(self.query(sql, [experiment_id])[0][0])

    def close(self) -> None:
        """Finish queued writes and close both connections."""
        self._writer.close()
        for conn in (self._write_conn, self._read_conn):
            if conn is not None:
                conn.close()
        self._write_conn = self._read_conn = None

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"
