"""Embedded state: one SQLite file (default ``./abllm-data/state.sqlite``), or memory.

Why SQLite and not the events' DuckDB file: DuckDB lets one process hold a file open for
writing and refuses every other process, even read-only, so ``abllm kill`` could not write
while ``abllm serve`` holds the events file. SQLite in WAL mode lets many processes read while
one writes, and a kill is a single-row transaction — its sweet spot. Writes in this process
reach its views at once; other processes on the machine see them by polling (``PRAGMA
data_version`` makes an idle poll nearly free), well inside a second.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from abllm.errors import StoreUnavailable
from abllm.state.base import BaseStateStore, Notice, Subscription
from abllm.state.liveness import SqliteLiveness
from abllm.state.models import AuditEntry, ExperimentState
from abllm.storeurl import file_url

_SCHEMA = """
CREATE TABLE IF NOT EXISTS abllm_state (
    experiment_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS abllm_state_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT,
    changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS abllm_state_audit_exp ON abllm_state_audit (experiment_id, id);
"""

# In-process listeners per database file, so a write reaches this process's views at once.
_LOCAL: dict[str, list[Callable[[Notice], None]]] = {}
_LOCAL_LOCK = threading.Lock()


def connect_sqlite(path: str) -> sqlite3.Connection:
    """Open (creating folders) a SQLite database in WAL mode, shared across threads."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open the state file {path}: {exc}") from exc
    return conn


class _LocalSubscription:
    """In-process fan-out. ``alive`` stays False so views keep polling for other processes."""

    def __init__(self, key: str, callback: Callable[[Notice], None]) -> None:
        self._key, self._callback = key, callback
        with _LOCAL_LOCK:
            _LOCAL.setdefault(key, []).append(callback)

    @property
    def alive(self) -> bool:
        return False

    def close(self) -> None:
        with _LOCAL_LOCK:
            callbacks = _LOCAL.get(self._key, [])
            if self._callback in callbacks:
                callbacks.remove(self._callback)


class EmbeddedStateStore(SqliteLiveness, BaseStateStore):
    """State in a SQLite file (``sqlite:///path``) or in memory (``memory://``).

    A file deleted or replaced under a running process (a reset) is noticed by
    :meth:`epoch` and :meth:`data_version`, which reopen the path.
    """

    kind = "embedded"

    def __init__(self, path: str) -> None:
        self.path = path
        self.url = "memory://" if path == ":memory:" else file_url("sqlite", path)
        self._key = f"{id(self)}" if path == ":memory:" else str(Path(path).resolve())
        self._lock = threading.RLock()
        self.conn = connect_sqlite(path)
        self._opened = 0
        self._retired: list[sqlite3.Connection] = []
        with self._lock:
            self.conn.executescript(_SCHEMA)
        self._liveness_schema()
        self._ident = self._file_ident()

    def _file_ident(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _ensure_current(self) -> None:
        """Reopen the path when the file this connection holds was deleted or replaced."""
        if self.path == ":memory:" or self._file_ident() == self._ident:
            return
        with self._lock:
            if self._file_ident() == self._ident:
                return
            # The old connection is retired, not closed: closing the last connection to a
            # deleted database checkpoints and unlinks "<path>-wal" by name, which now belongs
            # to the new file (see sqlite.org/howtocorrupt.html, "unlinking an open database").
            self._retired.append(self.conn)
            self.conn = connect_sqlite(self.path)
            self.conn.executescript(_SCHEMA)
            self._liveness_schema()
            self._ident = self._file_ident()
            self._opened += 1

    def data_version(self) -> int:
        """Changes when another connection commits (or the file is replaced): a near-free
        "anything new?" check."""
        self._ensure_current()
        with self._lock:
            version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
            return (self._opened << 32) | version

    def get(self, experiment_id: str) -> ExperimentState | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT state FROM abllm_state WHERE experiment_id = ?", (experiment_id,)
            ).fetchone()
        return ExperimentState.load(row[0]) if row else None

    def snapshot(self) -> dict[str, ExperimentState]:
        with self._lock:
            rows = self.conn.execute("SELECT experiment_id, state FROM abllm_state").fetchall()
        return {eid: ExperimentState.load(text) for eid, text in rows}

    def audit(self, experiment_id: str, limit: int = 100) -> list[AuditEntry]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT version, ts, actor, action, reason, changes FROM abllm_state_audit "
                "WHERE experiment_id = ? ORDER BY id DESC LIMIT ?",
                (experiment_id, limit),
            ).fetchall()
        return AuditEntry.from_rows(experiment_id, rows)

    def _write(self, expected_version: int, state: ExperimentState, entry: AuditEntry) -> bool:
        eid = state.experiment_id
        stamp = state.updated_at.isoformat() if state.updated_at else None
        with self._lock:
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                if expected_version == 0:
                    cur.execute(
                        "INSERT INTO abllm_state (experiment_id, version, state, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (experiment_id) DO NOTHING",
                        (eid, state.version, state.stored(), stamp),
                    )
                else:
                    cur.execute(
                        "UPDATE abllm_state SET version = ?, state = ?, updated_at = ? "
                        "WHERE experiment_id = ? AND version = ?",
                        (state.version, state.stored(), stamp, eid, expected_version),
                    )
                if cur.rowcount != 1:
                    cur.execute("ROLLBACK")
                    return False
                cur.execute(
                    "INSERT INTO abllm_state_audit "
                    "(experiment_id, version, ts, actor, action, reason, changes) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        eid,
                        entry.version,
                        entry.ts.isoformat(),
                        entry.actor,
                        entry.action,
                        entry.reason,
                        json.dumps(entry.changes),
                    ),
                )
                cur.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        with _LOCAL_LOCK:
            callbacks = list(_LOCAL.get(self._key, []))
        for callback in callbacks:
            callback(Notice(eid))
        return True

    def subscribe(self, callback: Callable[[Notice], None]) -> Subscription:
        return _LocalSubscription(self._key, callback)

    def close(self) -> None:
        with self._lock:
            for conn in (*self._retired, self.conn):
                conn.close()
