"""Reset detection and applied-version heartbeats, one mixin per backend.

Two questions a kill must answer honestly:

- **Was the store reset?** Each backend keeps an *epoch*: a random token written the first
  time anyone asks for it (Redis key ``<prefix>epoch``, a row of ``abllm_state_meta`` in
  PostgreSQL and SQLite). A Redis restarted empty, a dropped schema or a replaced SQLite file
  loses the token, so the next reader writes a new one and every :class:`StateView` sees the
  change: it re-adopts the store's state even where its versions are lower than the last ones
  seen, and writes back what the store lost (:meth:`BaseStateStore.restore`).
- **Did every live process apply it?** Each view heartbeats a :class:`ProcessBeat` (epoch and
  the state version it applied per experiment) into the store about once a second;
  :func:`abllm.state.confirm.confirm` counts the live processes that applied a change.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import psycopg
    import redis

    from abllm.state.postgres import PgConnection

#: How long a process without a heartbeat still counts as live (it beats every second).
LIVE_S = 5.0
#: Beats older than this are deleted by the next reader (a crashed process leaves one behind).
FORGET_S = 3600.0


def new_epoch() -> str:
    """A fresh epoch token."""
    return uuid.uuid4().hex[:16]


def process_id() -> str:
    """``host:pid:random``: unique even when pids repeat across containers."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ProcessBeat(BaseModel):
    """One process's heartbeat: which state versions it applied, in which epoch."""

    model_config = ConfigDict(frozen=True)

    process_id: str
    name: str = Field(description="what runs the view, e.g. 'abllm serve'")
    epoch: str | None
    applied: dict[str, int] = Field(description="experiment id -> state version applied")
    connected: bool = Field(description="the process's last read of the store succeeded")
    ts: datetime

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds since this beat was written."""
        return ((now or datetime.now(UTC)) - self.ts).total_seconds()


# -- SQLite (embedded and memory://) -------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS abllm_state_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS abllm_state_procs (
    process_id TEXT PRIMARY KEY,
    beat TEXT NOT NULL,
    seen_at REAL NOT NULL
);
"""


class SqliteLiveness:
    """Epoch and heartbeats in the state's SQLite file."""

    conn: sqlite3.Connection
    _lock: threading.RLock

    def _ensure_current(self) -> None:
        """Hook: reopen the file when it was replaced (see ``EmbeddedStateStore``)."""

    def _liveness_schema(self) -> None:
        """Create the epoch and heartbeat tables (the store calls this whenever it opens)."""
        with self._lock:
            self.conn.executescript(_SQLITE_SCHEMA)

    def epoch(self) -> str:
        """The store's epoch, created on first use (see the module docs)."""
        self._ensure_current()
        read = "SELECT value FROM abllm_state_meta WHERE key = 'epoch'"
        with self._lock:
            row = self.conn.execute(read).fetchone()
            if row is None:  # read first: a poll must not take the write lock
                self.conn.execute(
                    "INSERT INTO abllm_state_meta (key, value) VALUES ('epoch', ?) "
                    "ON CONFLICT (key) DO NOTHING",
                    (new_epoch(),),
                )
                row = self.conn.execute(read).fetchone()
        return str(row[0])

    def heartbeat(self, beat: ProcessBeat) -> None:
        """Record ``beat`` (replacing the process's previous one)."""
        with self._lock:
            self.conn.execute(
                "INSERT INTO abllm_state_procs (process_id, beat, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (process_id) DO UPDATE SET beat = excluded.beat, "
                "seen_at = excluded.seen_at",
                (beat.process_id, beat.model_dump_json(), beat.ts.timestamp()),
            )

    def forget(self, process_id: str) -> None:
        """Remove a process's beat (it stopped cleanly)."""
        with self._lock:
            self.conn.execute("DELETE FROM abllm_state_procs WHERE process_id = ?", (process_id,))

    def processes(self) -> list[ProcessBeat]:
        """Every beat of the last hour, newest first (callers split live from silent)."""
        with self._lock:
            self.conn.execute(
                "DELETE FROM abllm_state_procs WHERE seen_at < ?", (time.time() - FORGET_S,)
            )
            rows = self.conn.execute(
                "SELECT beat FROM abllm_state_procs ORDER BY seen_at DESC"
            ).fetchall()
        return [ProcessBeat.model_validate_json(r[0]) for r in rows]


# -- PostgreSQL ----------------------------------------------------------------------------------


class _PgLivenessQueries:
    def __init__(self, schema: str) -> None:
        from psycopg import sql

        meta = sql.Identifier(schema, "abllm_state_meta")
        procs = sql.Identifier(schema, "abllm_state_procs")
        self.create = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            ).format(meta),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (process_id TEXT PRIMARY KEY, "
                "beat JSONB NOT NULL, seen_at TIMESTAMPTZ NOT NULL)"
            ).format(procs),
        ]
        self.epoch = sql.SQL("SELECT value FROM {} WHERE key = 'epoch'").format(meta)
        self.new_epoch = sql.SQL(
            "INSERT INTO {} (key, value) VALUES ('epoch', %s) ON CONFLICT (key) DO NOTHING"
        ).format(meta)
        self.beat = sql.SQL(
            "INSERT INTO {} (process_id, beat, seen_at) VALUES (%s, %s::jsonb, now()) "
            "ON CONFLICT (process_id) DO UPDATE SET beat = excluded.beat, seen_at = now()"
        ).format(procs)
        self.forget = sql.SQL("DELETE FROM {} WHERE process_id = %s").format(procs)
        self.prune = sql.SQL(
            "DELETE FROM {} WHERE seen_at < now() - make_interval(secs => %s)"
        ).format(procs)
        # ages on the server's clock, so processes on hosts with skewed clocks compare fairly
        self.list = sql.SQL(
            "SELECT beat::text, extract(epoch FROM now() - seen_at)::float8 FROM {} "
            "ORDER BY seen_at DESC"
        ).format(procs)


class PgLiveness:
    """Epoch and heartbeats in ``<schema>.abllm_state_meta`` / ``abllm_state_procs``."""

    db: PgConnection
    schema: str
    _create: Callable[[psycopg.Connection[Any]], None]
    _lq: _PgLivenessQueries | None = None

    def _liveness(self, fn: Callable[[psycopg.Connection[Any], _PgLivenessQueries], Any]) -> Any:
        """Run ``fn``; when the tables are gone (schema dropped), recreate all and retry once."""
        import psycopg

        lq = self._queries()

        def run(conn: psycopg.Connection[Any]) -> Any:
            try:  # autocommit: one round trip per statement, no BEGIN/COMMIT
                return fn(conn, lq)
            except psycopg.errors.UndefinedTable:
                self._create(conn)
                return fn(conn, lq)

        return self.db.run(run)

    def _queries(self) -> _PgLivenessQueries:
        if self._lq is None:
            self._lq = _PgLivenessQueries(self.schema)
        return self._lq

    def _liveness_create(self, conn: psycopg.Connection[Any]) -> None:
        """Create the epoch and heartbeat tables (the store's ``_create`` calls this)."""
        for statement in self._queries().create:
            conn.execute(statement)

    def epoch(self) -> str:
        """The store's epoch, created on first use (see the module docs)."""

        def read(c: psycopg.Connection[Any], q: _PgLivenessQueries) -> list[Any]:
            rows = c.execute(q.epoch).fetchall()
            if not rows:  # read first: a poll writes nothing (and uses no transaction id)
                c.execute(q.new_epoch, (new_epoch(),))
                rows = c.execute(q.epoch).fetchall()
            return rows

        # autocommit: the re-read after a concurrent first insert sees the winner's row
        return str(self._liveness(read)[0][0])

    def heartbeat(self, beat: ProcessBeat) -> None:
        """Record ``beat`` (replacing the process's previous one)."""
        self._liveness(lambda c, q: c.execute(q.beat, (beat.process_id, beat.model_dump_json())))

    def forget(self, process_id: str) -> None:
        """Remove a process's beat (it stopped cleanly)."""
        self._liveness(lambda c, q: c.execute(q.forget, (process_id,)))

    def processes(self) -> list[ProcessBeat]:
        """Every beat of the last hour, newest first; ``ts`` is when the server received it
        (its age measured on the server's clock, placed on this host's)."""

        def read(c: psycopg.Connection[Any], q: _PgLivenessQueries) -> list[Any]:
            c.execute(q.prune, (FORGET_S,))
            return c.execute(q.list).fetchall()

        rows = self._liveness(read)
        now = datetime.now(UTC)
        return [_received(text, now, age) for text, age in rows]


# -- Redis ---------------------------------------------------------------------------------------


def _received(text: str | bytes, now: datetime, age_s: float) -> ProcessBeat:
    """A stored beat, stamped ``age_s`` seconds (measured on the server) before ``now``."""
    beat = json.loads(text)
    beat["ts"] = now - timedelta(seconds=max(0.0, float(age_s)))
    return ProcessBeat.model_validate(beat)


#: Store a beat with the Redis server's clock (``TIME``), so host clock skew does not matter.
_BEAT = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], t[1] .. '.' .. string.format('%06d', t[2]))
return 1
"""


class RedisLiveness:
    """Epoch in ``<prefix>epoch``; heartbeats in the hash ``<prefix>procs`` and when the
    server received them in ``<prefix>procs-seen``."""

    client: redis.Redis
    prefix: str
    _call: Callable[[Callable[[], Any]], Any]
    _beat_script: Any = None

    def epoch(self) -> str:
        """The store's epoch, created on first use (see the module docs)."""
        key = f"{self.prefix}epoch"

        def read() -> Any:
            raw = self.client.get(key)
            if raw is None:  # first reader after a restart that lost the data
                pipe = self.client.pipeline(transaction=True)
                pipe.set(key, new_epoch(), nx=True)
                pipe.get(key)
                raw = pipe.execute()[1]
            return raw

        raw = self._call(read)
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def heartbeat(self, beat: ProcessBeat) -> None:
        """Record ``beat`` (replacing the process's previous one)."""
        if self._beat_script is None:
            self._beat_script = self.client.register_script(_BEAT)
        keys = [f"{self.prefix}procs", f"{self.prefix}procs-seen"]
        args = [beat.process_id, beat.model_dump_json()]
        self._call(lambda: self._beat_script(keys=keys, args=args))

    def forget(self, process_id: str) -> None:
        """Remove a process's beat (it stopped cleanly)."""
        self._call(lambda: self._forget([process_id]))

    def _forget(self, ids: list[Any]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(f"{self.prefix}procs", *ids)
        pipe.hdel(f"{self.prefix}procs-seen", *ids)
        pipe.execute()

    def processes(self) -> list[ProcessBeat]:
        """Every beat of the last hour, newest first (ages on the server's clock)."""

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(f"{self.prefix}procs")
            pipe.hgetall(f"{self.prefix}procs-seen")
            pipe.time()
            return list(pipe.execute())

        beats_raw, seen_raw, (secs, micros) = self._call(read)
        server_now, now = secs + micros / 1e6, datetime.now(UTC)
        beats: list[ProcessBeat] = []
        stale: list[Any] = []
        for key, value in beats_raw.items():
            seen = seen_raw.get(key)
            age = server_now - float(seen) if seen is not None else FORGET_S + 1
            if age > FORGET_S:
                stale.append(key)
            else:
                beats.append(_received(value, now, age))
        if stale:
            self._call(lambda: self._forget(stale))
        return sorted(beats, key=lambda b: b.ts, reverse=True)
