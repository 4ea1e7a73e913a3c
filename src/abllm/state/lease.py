"""Leases in the state backend: at most one process acts for a name (one experiment) at a time.

Every ``abllm serve`` process runs the rollout controller; before it evaluates an experiment it
takes (or renews) the lease ``controller:<experiment>`` for ``ttl_s`` seconds. Only the holder
acts; the others skip the experiment. A holder that dies stops renewing, the lease expires and
the next process that asks takes it over — no one has to notice the death.

A lease is a liveness device, not the safety net: every state change is still a
compare-and-swap on the state version (:mod:`abllm.state.base`), so even two processes that
both believed they held a lease (a paused holder waking after expiry) cannot both apply the
same pause.

Expiry is judged by one clock per backend, so the hosts' clocks need not agree: PostgreSQL's
``now()``, Redis's key TTL, and for SQLite (one machine) the host clock.

Backends (built from an open :class:`~abllm.state.base.StateStore` by :func:`leases_for`):

- SQLite: table ``abllm_lease`` in the state file, one ``BEGIN IMMEDIATE`` transaction;
- PostgreSQL: table ``<schema>.abllm_lease``, one ``INSERT … ON CONFLICT DO UPDATE … WHERE``;
- Redis: key ``<prefix>lease:<name>`` with a TTL, one Lua script.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from abllm.errors import ValidationError
from abllm.state.extension import for_backend

if TYPE_CHECKING:
    from abllm.state.base import StateStore
    from abllm.state.embedded import EmbeddedStateStore
    from abllm.state.postgres import PostgresStateStore
    from abllm.state.redis import RedisStateStore

T = TypeVar("T")


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a lease and until when (UTC)."""

    name: str
    holder: str
    expires_at: datetime


class Leases(Protocol):
    """Named, expiring leases in a state backend.

    Example::

        leases = leases_for(open_state("sqlite:///./abllm-data/events.state.sqlite"))
        if leases.acquire("controller:exp", "host-1:4242", ttl_s=30):
            ...  # act; call acquire again before ttl_s passes to keep the lease
    """

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take ``name`` for ``ttl_s`` s if it is free, expired or already ``holder``'s."""
        ...

    def release(self, name: str, holder: str) -> None:
        """Give ``name`` up at once if ``holder`` holds it (a clean shutdown)."""
        ...

    def holder(self, name: str) -> LeaseInfo | None:
        """The current, unexpired holder of ``name``; None when free."""
        ...


def controller_lease(experiment_id: str) -> str:
    """The lease a rollout controller holds to act for ``experiment_id``."""
    return f"controller:{experiment_id}"


def _check(name: str, holder: str, ttl_s: float) -> None:
    if not name or not holder:
        raise ValidationError("a lease needs a name and a holder")
    if not ttl_s > 0:
        raise ValidationError(f"lease ttl_s must be > 0, got {ttl_s}")


class SqliteLeases:
    """Leases in the embedded state file (host clock: all holders are on this machine)."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS abllm_lease "
        "(name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL)"
    )

    def __init__(self, store: EmbeddedStateStore) -> None:
        self._store = store
        with store._lock:
            store.conn.execute(self._SCHEMA)

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        _check(name, holder, ttl_s)
        now = time.time()
        with self._store._lock:
            cur = self._store.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute(
                    "INSERT INTO abllm_lease (name, holder, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                    "expires_at = excluded.expires_at "
                    "WHERE abllm_lease.holder = excluded.holder OR abllm_lease.expires_at < ?",
                    (name, holder, now + ttl_s, now),
                )
                won = cur.rowcount == 1
                cur.execute("COMMIT")
            except BaseException:
                if self._store.conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        return won

    def release(self, name: str, holder: str) -> None:
        with self._store._lock:
            self._store.conn.execute(
                "DELETE FROM abllm_lease WHERE name = ? AND holder = ?", (name, holder)
            )

    def holder(self, name: str) -> LeaseInfo | None:
        with self._store._lock:
            row = self._store.conn.execute(
                "SELECT holder, expires_at FROM abllm_lease WHERE name = ? AND expires_at >= ?",
                (name, time.time()),
            ).fetchone()
        if row is None:
            return None
        return LeaseInfo(name, str(row[0]), datetime.fromtimestamp(float(row[1]), UTC))


class PostgresLeases:
    """Leases in ``<schema>.abllm_lease``; expiry by the database's clock."""

    def __init__(self, store: PostgresStateStore) -> None:
        from psycopg import sql

        self._db = store.db
        table = sql.Identifier(store.schema, "abllm_lease")
        create = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, "
            "expires_at TIMESTAMPTZ NOT NULL)"
        ).format(table)
        self._acquire = sql.SQL(
            "INSERT INTO {t} AS l (name, holder, expires_at) "
            "VALUES (%s, %s, now() + make_interval(secs => %s)) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            "WHERE l.holder = excluded.holder OR l.expires_at < now() RETURNING 1"
        ).format(t=table)
        self._release = sql.SQL("DELETE FROM {} WHERE name = %s AND holder = %s").format(table)
        self._holder = sql.SQL(
            "SELECT holder, expires_at FROM {} WHERE name = %s AND expires_at >= now()"
        ).format(table)
        self._create_sql = create
        self._lock_key = f"abllm:{store.schema}"
        self._created = False  # the table is made on first use: serve starts while PG is down

    def _create(self, conn: Any) -> None:
        # The same advisory lock as the state tables: concurrent CREATE ... IF NOT EXISTS
        # from processes starting together would collide on pg_type.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._lock_key,))
            conn.execute(self._create_sql)
        self._created = True

    def _run(self, fn: Callable[[Any], T]) -> T:
        """``fn`` on the store's connection, the table created first (again after a reset)."""
        from psycopg import errors

        def run(conn: Any) -> T:
            if not self._created:
                self._create(conn)
            try:
                return fn(conn)
            except errors.UndefinedTable:  # the schema was dropped under a live connection
                self._create(conn)
                return fn(conn)

        return self._db.run(run)

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        _check(name, holder, ttl_s)
        rows = self._run(
            lambda conn: conn.execute(self._acquire, (name, holder, float(ttl_s))).fetchall()
        )
        return bool(rows)

    def release(self, name: str, holder: str) -> None:
        self._run(lambda conn: conn.execute(self._release, (name, holder)))

    def holder(self, name: str) -> LeaseInfo | None:
        rows = self._run(lambda conn: conn.execute(self._holder, (name,)).fetchall())
        if not rows:
            return None
        holder, expires = rows[0]
        return LeaseInfo(name, str(holder), expires.astimezone(UTC))


_REDIS_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_REDIS_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeases:
    """Leases as Redis keys with a TTL (Redis's clock decides expiry)."""

    def __init__(self, store: RedisStateStore) -> None:
        self._store = store
        self._acquire = store.client.register_script(_REDIS_ACQUIRE)
        self._release = store.client.register_script(_REDIS_RELEASE)

    def _key(self, name: str) -> str:
        return f"{self._store.prefix}lease:{name}"

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        _check(name, holder, ttl_s)
        ms = max(1, round(ttl_s * 1000))
        return bool(
            self._store._call(lambda: self._acquire(keys=[self._key(name)], args=[holder, ms]))
        )

    def release(self, name: str, holder: str) -> None:
        self._store._call(lambda: self._release(keys=[self._key(name)], args=[holder]))

    def holder(self, name: str) -> LeaseInfo | None:
        def read() -> tuple[Any, Any]:
            pipe = self._store.client.pipeline(transaction=True)
            pipe.get(self._key(name))
            pipe.pttl(self._key(name))
            got, ttl = pipe.execute()
            return got, ttl

        raw, ttl_ms = self._store._call(read)
        if raw is None or ttl_ms is None or int(ttl_ms) < 0:
            return None
        holder = raw.decode() if isinstance(raw, bytes) else str(raw)
        expires = datetime.fromtimestamp(time.time() + int(ttl_ms) / 1000, UTC)
        return LeaseInfo(name, holder, expires)


_OPENED: weakref.WeakKeyDictionary[Any, Leases] = weakref.WeakKeyDictionary()


def leases_for(store: StateStore) -> Leases:
    """The lease table of ``store``'s backend (created once per store object)."""
    return for_backend(
        store,
        _OPENED,
        {"embedded": SqliteLeases, "postgres": PostgresLeases, "redis": RedisLeases},
        "has no leases",
    )
