"""State in PostgreSQL, pushed to every process with LISTEN/NOTIFY.

The state row and its audit row are written in one transaction that also calls ``pg_notify``;
PostgreSQL delivers the notification only when that transaction commits, so a listener never
hears of a change it cannot read yet. Tables live in ``?schema=NAME`` (default ``public``);
the channel is ``abllm_state`` (``abllm_state_<schema>`` for other schemas, so two
deployments in one database do not wake each other).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from abllm.errors import StoreUnavailable, ValidationError
from abllm.state.base import BaseStateStore, Notice, Subscription
from abllm.state.listener import PushListener
from abllm.state.liveness import PgLiveness
from abllm.state.models import AuditEntry, ExperimentState
from abllm.state.urls import check_identifier, pop_query, redact

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

LISTENER_APP_NAME = "abllm-state-listener"
T = TypeVar("T")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ValidationError(
            "the 'psycopg' package is needed for a postgresql:// state URL; "
            "install it with: pip install 'abllm[postgres]'"
        ) from exc
    return psycopg


def split_pg_url(url: str) -> tuple[str, str]:
    """(libpq URL, schema) from ``postgresql://...?schema=NAME``."""
    url = url.replace("postgres://", "postgresql://", 1)
    dsn, schema = pop_query(url, "schema")
    return dsn, check_identifier(schema or "public", "schema")


class PgConnection:
    """One autocommit connection guarded by a lock, reopened once when it drops."""

    def __init__(
        self,
        dsn: str,
        app_name: str = "abllm-state",
        on_open: Callable[[psycopg.Connection[Any]], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.app_name = app_name
        self.on_open = on_open
        self.lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None

    def _open(self) -> psycopg.Connection[Any]:
        pg = _psycopg()
        try:
            conn: psycopg.Connection[Any] = pg.connect(
                self.dsn, autocommit=True, connect_timeout=3, application_name=self.app_name
            )
        except pg.Error as exc:
            raise StoreUnavailable(
                f"cannot reach the PostgreSQL state store {redact(self.dsn)}: {exc}"
            ) from exc
        try:
            if self.on_open is not None:
                self.on_open(conn)
        except pg.Error as exc:
            conn.close()
            raise StoreUnavailable(
                f"cannot reach the PostgreSQL state store {redact(self.dsn)}: {exc}"
            ) from exc
        return conn

    def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` on the connection; a dropped connection is reopened and ``fn`` retried once.

        Retrying a state write is safe: it is a compare-and-swap, so a write that did commit
        before the connection dropped fails the version check the second time.
        """
        pg = _psycopg()
        with self.lock:
            for attempt in (0, 1):
                fresh = self._conn is None or self._conn.closed
                if fresh:
                    self._conn = self._open()
                assert self._conn is not None
                try:
                    return fn(self._conn)
                except pg.OperationalError as exc:
                    self.close()
                    if fresh or attempt == 1:
                        raise StoreUnavailable(
                            f"PostgreSQL state store {redact(self.dsn)} failed: {exc}"
                        ) from exc
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (ignored when already closed)."""
        with self.lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):  # already broken: nothing to release
                    conn.close()


class _Queries:
    """Every statement, composed once with the schema as a quoted identifier."""

    def __init__(self, schema: str) -> None:
        from psycopg import sql

        state = sql.Identifier(schema, "abllm_state")
        audit = sql.Identifier(schema, "abllm_state_audit")
        self.create = [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (experiment_id TEXT PRIMARY KEY, "
                "version BIGINT NOT NULL, state JSONB NOT NULL, updated_at TIMESTAMPTZ)"
            ).format(state),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id BIGSERIAL PRIMARY KEY, "
                "experiment_id TEXT NOT NULL, version BIGINT NOT NULL, ts TIMESTAMPTZ NOT NULL, "
                "actor TEXT NOT NULL, action TEXT NOT NULL, reason TEXT, changes JSONB NOT NULL)"
            ).format(audit),
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS abllm_state_audit_exp ON {} (experiment_id, id)"
            ).format(audit),
        ]
        self.get = sql.SQL("SELECT state::text FROM {} WHERE experiment_id = %s").format(state)
        self.snapshot = sql.SQL("SELECT experiment_id, state::text FROM {}").format(state)
        self.audit = sql.SQL(
            "SELECT version, ts, actor, action, reason, changes::text FROM {} "
            "WHERE experiment_id = %s ORDER BY id DESC LIMIT %s"
        ).format(audit)
        self.insert = sql.SQL(
            "INSERT INTO {} (experiment_id, version, state, updated_at) "
            "VALUES (%s, %s, %s::jsonb, %s) ON CONFLICT (experiment_id) DO NOTHING"
        ).format(state)
        self.update = sql.SQL(
            "UPDATE {} SET version = %s, state = %s::jsonb, updated_at = %s "
            "WHERE experiment_id = %s AND version = %s"
        ).format(state)
        self.insert_audit = sql.SQL(
            "INSERT INTO {} (experiment_id, version, ts, actor, action, reason, changes) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)"
        ).format(audit)


class PostgresStateStore(PgLiveness, BaseStateStore):
    """State rows in ``<schema>.abllm_state``, audit in ``<schema>.abllm_state_audit``.

    Opening does not connect: the tables are created on each new connection, so a process can
    start while PostgreSQL is down and a dropped schema (a reset) is recreated on first use.
    """

    kind = "postgres"

    def __init__(self, url: str) -> None:
        self.dsn, self.schema = split_pg_url(url)
        self.url = redact(url)
        self.channel = "abllm_state" if self.schema == "public" else f"abllm_state_{self.schema}"
        self.q = _Queries(self.schema)
        self.db = PgConnection(self.dsn, on_open=self._create)

    def _create(self, conn: psycopg.Connection[Any]) -> None:
        # CREATE ... IF NOT EXISTS races between processes starting together (a duplicate key
        # on pg_type): one transaction-scoped advisory lock per schema serialises them.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"abllm:{self.schema}",))
            for statement in self.q.create:
                conn.execute(statement)
            self._liveness_create(conn)

    def _healing(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn``; tables dropped under a live connection are recreated and ``fn`` rerun."""
        pg = _psycopg()

        def run(conn: psycopg.Connection[Any]) -> T:
            try:
                return fn(conn)
            except pg.errors.UndefinedTable:
                self._create(conn)
                return fn(conn)

        return self.db.run(run)

    def _rows(self, query: sql.Composed, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._healing(lambda conn: conn.execute(query, params).fetchall())

    def get(self, experiment_id: str) -> ExperimentState | None:
        rows = self._rows(self.q.get, (experiment_id,))
        return ExperimentState.load(rows[0][0]) if rows else None

    def snapshot(self) -> dict[str, ExperimentState]:
        rows = self._rows(self.q.snapshot)
        return {eid: ExperimentState.load(text) for eid, text in rows}

    def audit(self, experiment_id: str, limit: int = 100) -> list[AuditEntry]:
        rows = self._rows(self.q.audit, (experiment_id, limit))
        return AuditEntry.from_rows(experiment_id, rows)

    def _write(self, expected_version: int, state: ExperimentState, entry: AuditEntry) -> bool:
        return self._healing(lambda conn: self._write_tx(conn, expected_version, state, entry))

    def _write_tx(
        self,
        conn: psycopg.Connection[Any],
        expected_version: int,
        state: ExperimentState,
        entry: AuditEntry,
    ) -> bool:
        eid = state.experiment_id
        with conn.transaction():
            if expected_version == 0:
                cur = conn.execute(
                    self.q.insert, (eid, state.version, state.stored(), state.updated_at)
                )
            else:
                cur = conn.execute(
                    self.q.update,
                    (state.version, state.stored(), state.updated_at, eid, expected_version),
                )
            if cur.rowcount != 1:
                return False
            conn.execute(
                self.q.insert_audit,
                (
                    eid,
                    entry.version,
                    entry.ts,
                    entry.actor,
                    entry.action,
                    entry.reason,
                    json.dumps(entry.changes),
                ),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, eid))
        return True

    def subscribe(self, callback: Callable[[Notice], None]) -> Subscription:
        return _PgListener(self.dsn, self.channel, callback).start()

    def close(self) -> None:
        self.db.close()


class _PgListener(PushListener):
    """LISTEN on a dedicated connection (``application_name`` abllm-state-listener)."""

    thread_name = "abllm-state-pg-listen"

    def __init__(self, dsn: str, channel: str, callback: Callable[[Notice], None]) -> None:
        super().__init__(callback)
        self._dsn, self._channel = dsn, channel
        self._conn: psycopg.Connection[Any] | None = None

    def _connect(self) -> None:
        pg = _psycopg()
        self._conn = pg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=3,
            application_name=LISTENER_APP_NAME,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
        )
        from psycopg import sql as pgsql

        self._conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self._channel)))

    def _wait(self, timeout: float) -> list[str]:
        conn = self._conn
        if conn is None or conn.closed:
            raise ConnectionError("listener connection closed")
        # stop_after=1: return as soon as one arrives (the generator otherwise runs until the
        # timeout, which would delay every change by up to ``timeout``)
        return [n.payload for n in conn.notifies(timeout=timeout, stop_after=1)]

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
