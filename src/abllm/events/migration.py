"""A server store's tables, created once on the first statement that finds the server up.

``abllm serve`` opens its store with ``defer_connect=True`` so it can start during an outage and
spool: the store then migrates on first use instead of at open (PostgreSQL and ClickHouse).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from abllm.errors import StoreUnavailable

log = logging.getLogger("abllm.events")


class Migration:
    """Runs ``migrate`` until it has succeeded once; thread-safe, free once done."""

    def __init__(self, migrate: Callable[[], None], lock: threading.Lock | threading.RLock) -> None:
        self._migrate = migrate
        self._lock = lock
        self._done = False

    def ensure(self) -> None:
        """Migrate now unless done (``StoreUnavailable`` while the server is down)."""
        if self._done:
            return
        with self._lock:
            if not self._done:
                self._migrate()
                self._done = True

    def at_open(self, server: str, *, defer_connect: bool) -> None:
        """Migrate while opening the store; with ``defer_connect`` a server that is down is
        logged and left for the first statement."""
        try:
            self.ensure()
        except StoreUnavailable as exc:
            if not defer_connect:
                raise
            log.warning("%s is unavailable; connecting on first use: %s", server, exc.message)
