"""Managed keys for the auth check, from a snapshot of :mod:`abllm.state.keys` kept fresh off
the request path (a new or revoked key takes effect within ``ttl_s``)."""

from __future__ import annotations

import hmac
import threading
import time
from typing import TYPE_CHECKING

from abllm.errors import StoreUnavailable
from abllm.state.keys import ManagedKeys, hash_key, parse_id

if TYPE_CHECKING:
    from abllm.server.auth import Caller


class KeyCache:
    """Managed keys for the auth check, from a snapshot refreshed off the request path.

    The first snapshot is read at construction. Later ones are read on a background thread
    once the snapshot is older than ``ttl_s``; the check keeps answering from the old one
    meanwhile. Until a snapshot was read (the backend was down at start) no managed key is
    known: ``abllm serve`` then binds beyond loopback only with a configured key.
    """

    def __init__(self, keys: ManagedKeys, ttl_s: float = 5.0) -> None:
        self._keys = keys
        self.ttl_s = ttl_s
        self._by_id: dict[str, tuple[str, Caller]] = {}  # id -> (key hash, caller)
        self._by_label: dict[str, Caller] = {}
        self._loaded = False
        self._read_at = 0.0
        self._refreshing = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        """Read the rows now (the background refresh calls this)."""
        from abllm.server.auth import Caller

        try:
            rows = [r for r in self._keys.all() if r.revoked_at is None]
        except (StoreUnavailable, OSError):
            self._read_at = time.monotonic()  # retried after ttl_s, not on every request
            return
        callers = {r.id: Caller(r.scope, r.label) for r in rows}
        self._by_id = {r.id: (r.key_hash, callers[r.id]) for r in rows}
        self._by_label = {c.name: c for c in callers.values()}
        self._loaded = True
        self._read_at = time.monotonic()

    def _fresh(self) -> None:
        if time.monotonic() - self._read_at < self.ttl_s:
            return
        if self._refreshing.acquire(blocking=False):

            def run() -> None:
                try:
                    self.refresh()
                finally:
                    self._refreshing.release()

            threading.Thread(target=run, name="abllm-key-cache", daemon=True).start()

    def any(self) -> bool:
        self._fresh()
        return bool(self._by_id)

    @property
    def loaded(self) -> bool:
        """True once a snapshot was read from the backend."""
        return self._loaded

    def caller(self, key: str) -> Caller | None:
        self._fresh()
        key_id = parse_id(key)
        found = self._by_id.get(key_id) if key_id is not None else None
        if found is None or not hmac.compare_digest(found[0], hash_key(key)):
            return None
        return found[1]

    def by_name(self, name: str) -> Caller | None:
        self._fresh()
        return self._by_label.get(name)
