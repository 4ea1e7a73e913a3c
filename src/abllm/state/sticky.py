"""Sticky-assignment stores (the Protocol is ``abllm.assign.sticky.StickyStore``).

- embedded: table ``abllm_sticky`` in the state SQLite file; ``INSERT OR IGNORE``
- PostgreSQL: ``<schema>.abllm_sticky``; bulk ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO
  NOTHING`` then one ``= ANY(…)`` read
- Redis: one hash per experiment version, ``<prefix>sticky:<experiment>:<version>``; ``HSETNX``
  then ``HMGET`` in one pipeline (seed 000 keeps sticky assignments in Redis too; an optional
  ``ttl_s`` expires idle hashes)

``open_sticky`` takes the same URLs as ``open_state``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from abllm.assign.sticky import MemoryStickyStore, StickyStore
from abllm.errors import ValidationError
from abllm.state.embedded import connect_sqlite
from abllm.state.open import _path_of, state_url_for
from abllm.state.postgres import PgConnection, split_pg_url
from abllm.state.redis import redis_client, split_redis_url

if TYPE_CHECKING:
    import psycopg

_CHUNK = 5000  # keys per statement: bounded parameter lists on every backend


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


class SqliteStickyStore:
    """Sticky assignments in a SQLite file (one machine)."""

    def __init__(self, path: str) -> None:
        self.conn = connect_sqlite(path)
        self._lock = threading.Lock()
        with self._lock:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS abllm_sticky (experiment_id TEXT NOT NULL, "
                "version INTEGER NOT NULL, unit_key TEXT NOT NULL, variant_id TEXT NOT NULL, "
                "PRIMARY KEY (experiment_id, version, unit_key))"
            )

    def get_many(self, experiment_id: str, version: int, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        with self._lock:
            for part in _chunks(list(keys)):
                marks = ",".join("?" * len(part))
                rows = self.conn.execute(
                    "SELECT unit_key, variant_id FROM abllm_sticky WHERE experiment_id = ? "  # noqa: S608
                    f"AND version = ? AND unit_key IN ({marks})",
                    (experiment_id, version, *part),
                ).fetchall()
                out.update(rows)
        return out

    def put_many(
        self, experiment_id: str, version: int, assignments: Mapping[str, str]
    ) -> dict[str, str]:
        rows = [(experiment_id, version, k, v) for k, v in assignments.items()]
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO abllm_sticky VALUES (?, ?, ?, ?)", rows
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return self.get_many(experiment_id, version, list(assignments))

    def close(self) -> None:
        """Close the file."""
        self.conn.close()


class PostgresStickyStore:
    """Sticky assignments in PostgreSQL (``?schema=NAME``, default ``public``)."""

    def __init__(self, url: str) -> None:
        from psycopg import sql

        dsn, schema = split_pg_url(url)
        self.db = PgConnection(dsn, app_name="abllm-sticky")
        table = sql.Identifier(schema, "abllm_sticky")
        self._create = [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (experiment_id TEXT NOT NULL, version INT NOT NULL, "
                "unit_key TEXT NOT NULL, variant_id TEXT NOT NULL, "
                "assigned_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
                "PRIMARY KEY (experiment_id, version, unit_key))"
            ).format(table),
        ]
        self._get = sql.SQL(
            "SELECT unit_key, variant_id FROM {} WHERE experiment_id = %s AND version = %s "
            "AND unit_key = ANY(%s)"
        ).format(table)
        self._put = sql.SQL(
            "INSERT INTO {} (experiment_id, version, unit_key, variant_id) "
            "SELECT %s, %s, k, v FROM unnest(%s::text[], %s::text[]) AS x(k, v) "
            "ON CONFLICT DO NOTHING"
        ).format(table)

        def create(conn: psycopg.Connection[Any]) -> None:
            for statement in self._create:
                conn.execute(statement)

        self.db.on_open = create  # on each (re)connect: opening must not need the server up

    def get_many(self, experiment_id: str, version: int, keys: Sequence[str]) -> dict[str, str]:
        def read(conn: psycopg.Connection[Any]) -> dict[str, str]:
            out: dict[str, str] = {}
            for part in _chunks(list(keys)):
                rows = conn.execute(self._get, (experiment_id, version, list(part))).fetchall()
                out.update(rows)
            return out

        return self.db.run(read)

    def put_many(
        self, experiment_id: str, version: int, assignments: Mapping[str, str]
    ) -> dict[str, str]:
        def write(conn: psycopg.Connection[Any]) -> None:
            for part in _chunks(list(assignments.items())):
                keys, values = [k for k, _ in part], [v for _, v in part]
                conn.execute(self._put, (experiment_id, version, keys, values))

        self.db.run(write)
        return self.get_many(experiment_id, version, list(assignments))

    def close(self) -> None:
        """Close the connection."""
        self.db.close()


class RedisStickyStore:
    """Sticky assignments in Redis hashes (``?prefix=``, default ``abllm:``)."""

    def __init__(self, url: str, *, ttl_s: int | None = None) -> None:
        redis_url, self.prefix = split_redis_url(url)
        self.client = redis_client(redis_url)
        self.ttl_s = ttl_s

    def _key(self, experiment_id: str, version: int) -> str:
        return f"{self.prefix}sticky:{experiment_id}:{version}"

    def get_many(self, experiment_id: str, version: int, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        name = self._key(experiment_id, version)
        for part in _chunks(list(keys)):
            values = self.client.hmget(name, list(part))
            out.update(
                (k, v.decode() if isinstance(v, bytes) else str(v))
                for k, v in zip(part, values, strict=True)
                if v is not None
            )
        return out

    def put_many(
        self, experiment_id: str, version: int, assignments: Mapping[str, str]
    ) -> dict[str, str]:
        name = self._key(experiment_id, version)
        for part in _chunks(list(assignments.items())):
            pipe = self.client.pipeline(transaction=False)
            for key, variant in part:
                pipe.hsetnx(name, key, variant)
            if self.ttl_s:
                pipe.expire(name, self.ttl_s)
            pipe.execute()
        return self.get_many(experiment_id, version, list(assignments))

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def open_sticky(url: str | None = None, *, store_url: str | None = None) -> StickyStore:
    """The sticky store for a state URL (same forms and defaults as ``open_state``)."""
    url = state_url_for(store_url, url)
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, url = "sqlite", f"sqlite:///{url}"
    if scheme == "memory":
        return MemoryStickyStore()
    if scheme == "sqlite":
        return SqliteStickyStore(_path_of(url))
    if scheme in ("postgresql", "postgres"):
        return PostgresStickyStore(url)
    if scheme in ("redis", "rediss"):
        return RedisStickyStore(url)
    raise ValidationError(
        f"unknown sticky store URL scheme {scheme!r}: use sqlite://, memory://, postgresql:// "
        "or redis://"
    )
