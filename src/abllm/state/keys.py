"""Managed API keys in the state backend: created once, stored hashed, revocable.

A key reads ``abllm_sk_<id>_<secret>`` (sdk scope) or ``abllm_ak_<id>_<secret>`` (admin): the
prefix lets secret scanners and log greps recognise it, ``<id>`` (8 hex digits) finds its row,
``<secret>`` carries 256 bits from :func:`secrets.token_urlsafe`. Only the SHA-256 of the whole
key is stored — a fast hash is enough for a key this random (no dictionary to try), and it keeps
the check cheap; comparison is constant time (:func:`hmac.compare_digest`). The key is shown
once, by ``abllm keys create``; afterwards a key is known by its *label*, e.g. ``ci
(abllm_sk_1a2b3c4d)``, which is what audit rows and logs name.

Backends (built from an open :class:`~abllm.state.base.StateStore` by :func:`keys_for`), as
:mod:`abllm.state.lease` does for leases:

- SQLite: table ``abllm_api_key`` in the state file;
- PostgreSQL: table ``<schema>.abllm_api_key``, made on first use;
- Redis: hash ``<prefix>apikey:<id>`` per key and the set ``<prefix>apikeys`` of ids.

The server reads them through :class:`abllm.state.keycache.KeyCache`: a snapshot refreshed in
the background every few seconds, so checking a key does no I/O on the request path.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from abllm.errors import Conflict, NotFound, ValidationError
from abllm.state.extension import for_backend

if TYPE_CHECKING:
    from abllm.state.base import StateStore
    from abllm.state.embedded import EmbeddedStateStore
    from abllm.state.postgres import PostgresStateStore
    from abllm.state.redis import RedisStateStore

T = TypeVar("T")
Scope = Literal["sdk", "admin"]
PREFIXES: dict[Scope, str] = {"sdk": "abllm_sk_", "admin": "abllm_ak_"}
_KEY = re.compile(r"^abllm_(sk|ak)_([0-9a-f]{8})_[A-Za-z0-9_-]{20,}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:@-]{0,63}$")


@dataclass(frozen=True)
class KeyRecord:
    """One managed key as stored: never the key, only its SHA-256."""

    id: str
    name: str
    scope: Scope
    key_hash: str
    created_at: float
    revoked_at: float | None = None

    @property
    def prefix(self) -> str:
        """The recognisable, non-secret start of the key, e.g. ``abllm_sk_1a2b3c4d``."""
        return f"{PREFIXES[self.scope]}{self.id}"

    @property
    def label(self) -> str:
        """How audit rows and logs name the key: ``name (prefix)``."""
        return f"{self.name} ({self.prefix})"

    def to_json(self) -> dict[str, Any]:
        """The listing shape (no hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_key(key: str) -> str:
    """SHA-256 of the whole key, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def parse_id(key: str) -> str | None:
    """The id inside a managed key, or None when ``key`` does not look like one."""
    match = _KEY.match(key)
    return match.group(2) if match else None


class ManagedKeys(Protocol):
    """Rows of managed keys in a state backend."""

    def add(self, record: KeyRecord) -> None:
        """Store a new key row."""
        ...

    def all(self) -> list[KeyRecord]:
        """Every row, revoked ones included, oldest first."""
        ...

    def revoke(self, key_id: str, at: float) -> bool:
        """Mark ``key_id`` revoked; False when it is unknown or already revoked."""
        ...


def create_key(keys: ManagedKeys, scope: str, name: str) -> tuple[KeyRecord, str]:
    """Make a key: the stored record and the key itself (show it once, never store it)."""
    if scope not in PREFIXES:
        raise ValidationError(f"scope {scope!r}: use sdk or admin")
    if not _NAME.match(name):
        raise ValidationError(
            f"name {name!r}: 1-64 letters, digits, spaces or ._:@- (starting with a letter/digit)"
        )
    if any(r.name == name and r.revoked_at is None for r in keys.all()):
        raise Conflict(f"a key named {name!r} exists: revoke it first or choose another name")
    key_id = secrets.token_hex(4)
    key = f"{PREFIXES[scope]}{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(key_id, name, scope, hash_key(key), time.time())
    keys.add(record)
    return record, key


def revoke_key(keys: ManagedKeys, which: str) -> KeyRecord:
    """Revoke the unrevoked key whose id, prefix or name is ``which``."""
    for record in keys.all():
        if record.revoked_at is None and which in (record.id, record.prefix, record.name):
            keys.revoke(record.id, time.time())
            return record
    raise NotFound(f"no active key with id, prefix or name {which!r} (see abllm keys list)")


class SqliteKeys:
    """Key rows in the embedded state file."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS abllm_api_key (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "scope TEXT NOT NULL, key_hash TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)"
    )

    def __init__(self, store: EmbeddedStateStore) -> None:
        self._store = store
        with store._lock:
            store.conn.execute(self._SCHEMA)

    def add(self, record: KeyRecord) -> None:
        with self._store._lock:
            self._store.conn.execute(
                "INSERT INTO abllm_api_key VALUES (?, ?, ?, ?, ?, ?)", _row(record)
            )

    def all(self) -> list[KeyRecord]:
        with self._store._lock:
            rows = self._store.conn.execute(
                "SELECT id, name, scope, key_hash, created_at, revoked_at FROM abllm_api_key "
                "ORDER BY created_at"
            ).fetchall()
        return [_record(r) for r in rows]

    def revoke(self, key_id: str, at: float) -> bool:
        with self._store._lock:
            cur = self._store.conn.execute(
                "UPDATE abllm_api_key SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, key_id),
            )
        return cur.rowcount == 1


class PostgresKeys:
    """Key rows in ``<schema>.abllm_api_key``, the table made on first use."""

    def __init__(self, store: PostgresStateStore) -> None:
        from psycopg import sql

        self._db = store.db
        table = sql.Identifier(store.schema, "abllm_api_key")
        self._create_sql = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "scope TEXT NOT NULL, key_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
            "revoked_at DOUBLE PRECISION)"
        ).format(table)
        self._insert = sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s)").format(table)
        self._select = sql.SQL(
            "SELECT id, name, scope, key_hash, created_at, revoked_at FROM {} ORDER BY created_at"
        ).format(table)
        self._revoke = sql.SQL(
            "UPDATE {} SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL RETURNING 1"
        ).format(table)
        self._lock_key = f"abllm:{store.schema}"
        self._created = False

    def _run(self, fn: Callable[[Any], T]) -> T:
        from psycopg import errors

        def create(conn: Any) -> None:
            # The state tables' advisory lock: concurrent CREATE ... IF NOT EXISTS collide.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._lock_key,))
                conn.execute(self._create_sql)
            self._created = True

        def run(conn: Any) -> T:
            if not self._created:
                create(conn)
            try:
                return fn(conn)
            except errors.UndefinedTable:  # the schema was dropped under a live connection
                create(conn)
                return fn(conn)

        return self._db.run(run)

    def add(self, record: KeyRecord) -> None:
        self._run(lambda conn: conn.execute(self._insert, _row(record)))

    def all(self) -> list[KeyRecord]:
        rows = self._run(lambda conn: conn.execute(self._select).fetchall())
        return [_record(r) for r in rows]

    def revoke(self, key_id: str, at: float) -> bool:
        rows = self._run(lambda conn: conn.execute(self._revoke, (at, key_id)).fetchall())
        return bool(rows)


class RedisKeys:
    """Key rows as Redis hashes plus a set of ids."""

    _FIELDS = ("id", "name", "scope", "key_hash", "created_at", "revoked_at")

    def __init__(self, store: RedisStateStore) -> None:
        self._store = store
        self._ids = f"{store.prefix}apikeys"

    def _key(self, key_id: str) -> str:
        return f"{self._store.prefix}apikey:{key_id}"

    def add(self, record: KeyRecord) -> None:
        mapping: dict[Any, Any] = {
            f: str(v) for f, v in zip(self._FIELDS, _row(record), strict=True) if v is not None
        }

        def write() -> None:
            pipe = self._store.client.pipeline(transaction=True)
            pipe.hset(self._key(record.id), mapping=mapping)
            pipe.sadd(self._ids, record.id)
            pipe.execute()

        self._store._call(write)

    def all(self) -> list[KeyRecord]:
        def read() -> list[Any]:
            ids = sorted(self._store.client.smembers(self._ids))
            pipe = self._store.client.pipeline(transaction=False)
            for key_id in ids:
                pipe.hgetall(self._key(key_id.decode() if isinstance(key_id, bytes) else key_id))
            return list(pipe.execute())

        records = []
        for raw in self._store._call(read):
            got = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in raw.items()
            }
            if got:
                records.append(_record(tuple(got.get(f) for f in self._FIELDS)))
        return sorted(records, key=lambda r: r.created_at)

    def revoke(self, key_id: str, at: float) -> bool:
        # HSETNX: a second revoke keeps the first time and reports False.
        return bool(
            self._store._call(
                lambda: (
                    self._store.client.exists(self._key(key_id))
                    and self._store.client.hsetnx(self._key(key_id), "revoked_at", str(at))
                )
            )
        )


def _row(record: KeyRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.name,
        record.scope,
        record.key_hash,
        record.created_at,
        record.revoked_at,
    )


def _record(row: Any) -> KeyRecord:
    key_id, name, scope, key_hash, created, revoked = row
    return KeyRecord(
        str(key_id),
        str(name),
        "admin" if scope == "admin" else "sdk",
        str(key_hash),
        float(created),
        None if revoked is None else float(revoked),
    )


_OPENED: weakref.WeakKeyDictionary[Any, ManagedKeys] = weakref.WeakKeyDictionary()


def keys_for(store: StateStore) -> ManagedKeys:
    """The key table of ``store``'s backend (created once per store object)."""
    return for_backend(
        store,
        _OPENED,
        {"embedded": SqliteKeys, "postgres": PostgresKeys, "redis": RedisKeys},
        "keeps no managed keys",
    )
