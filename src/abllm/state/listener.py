"""A push listener thread that reconnects on its own and says when it is down.

PostgreSQL LISTEN and Redis SUBSCRIBE share this loop: connect, report ``reconnected`` (so the
view re-reads everything it may have missed), relay notices, and on any error mark the channel
dead, back off and try again. While ``alive`` is False the :class:`~abllm.state.view.StateView`
polls fast instead.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Callable

from abllm.state.base import Notice

log = logging.getLogger("abllm.state")


class PushListener(abc.ABC):
    """Background thread relaying push notices; subclasses implement connect/wait/disconnect."""

    thread_name = "abllm-state-push"

    def __init__(self, callback: Callable[[Notice], None]) -> None:
        self._callback = callback
        self._stop = threading.Event()
        self._alive = False
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def start(self) -> PushListener:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """True while the push connection is up."""
        return self._alive and not self._stop.is_set()

    def close(self) -> None:
        """Stop the thread and drop its connection."""
        self._stop.set()
        self._safe_disconnect()
        self._thread.join(timeout=3)

    @abc.abstractmethod
    def _connect(self) -> None:
        """Open the connection and subscribe."""

    @abc.abstractmethod
    def _wait(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` seconds; return the experiment ids notified."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Close the connection (must not raise)."""

    def _safe_disconnect(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection may fail in any way
            self._disconnect()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                self._connect()
                self._alive = True
                backoff = 0.05
                self._callback(Notice(None, reconnected=True))
                while not self._stop.is_set():
                    for experiment_id in self._wait(0.5):
                        self._callback(Notice(experiment_id))
            except Exception as exc:
                if self._stop.is_set():
                    break
                was_alive, self._alive = self._alive, False
                if was_alive:
                    log.warning("state push channel lost (%s); polling until it is back", exc)
                    self._callback(Notice(None, dropped=True))
                self._safe_disconnect()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
        self._alive = False


class NullSubscription:
    """The subscription of a backend without a push channel (polling only)."""

    @property
    def alive(self) -> bool:
        """Never alive: the view polls at the fast interval."""
        return False

    def close(self) -> None:
        """Nothing to release."""
