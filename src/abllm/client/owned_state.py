"""The runtime state a file-config ``Client`` opens itself: where ``abllm serve`` keeps it.

``abllm serve --store URL`` reads the kill switch, stages and paused arms from the state beside
its store (``abllm.state.state_url_for``); a client built from the same file and store must see
the same, or ``abllm kill`` would stop the gateway but not the SDK. This reader opens that state
with ``open_state`` and follows it with a ``StateView`` (push, else polling).

Fail safe (DESIGN.md): when the state store cannot be reached as the client starts, the client
still starts; every experiment reads as paused, so units get the control's config and nothing
is counted, and a background thread retries every ``retry_s`` until the store answers. A state
URL that can never work (an unknown scheme, a ``clickhouse://`` store) is refused at once.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from abllm.assign import RuntimeState
from abllm.errors import StoreUnavailable

if TYPE_CHECKING:
    from abllm.state import StateStore, StateView

log = logging.getLogger("abllm.client")

#: What every experiment reads as until the state store has been reached once.
UNREACHABLE = RuntimeState(paused=True)


class OwnedState:
    """A ``StateReader`` over the state store ``abllm serve`` uses, closed with the client."""

    def __init__(
        self, state_url: str | None, store_url: str | None, *, retry_s: float = 1.0
    ) -> None:
        from abllm.state import state_url_for

        self.url = state_url_for(store_url, state_url)
        self.retry_s = retry_s
        self._store: StateStore | None = None
        self._view: StateView | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not self._try_open():
            self._thread = threading.Thread(
                target=self._retry, name="abllm-client-state", daemon=True
            )
            self._thread.start()

    @property
    def reachable(self) -> bool:
        """True once the state store has been opened (the view then follows it)."""
        return self._view is not None

    def get(self, experiment_id: str) -> RuntimeState:
        """The experiment's runtime state; paused while the store was never reached."""
        view = self._view
        return UNREACHABLE if view is None else view.get(experiment_id)

    def _try_open(self) -> bool:
        from abllm.state import StateView, open_state

        try:
            store = open_state(self.url)
        except StoreUnavailable as exc:
            if self._thread is None:
                log.warning("abllm state unreachable (%s); serving control until it answers", exc)
            return False
        try:
            view = StateView(store).start()
        except BaseException:
            store.close()
            raise
        with self._lock:
            if self._stop.is_set():  # closed meanwhile
                view.close()
                store.close()
            else:
                self._store, self._view = store, view
        if self._thread is not None:
            log.info("abllm state reachable: %s", self.url)
        return True

    def _retry(self) -> None:
        while not self._stop.wait(self.retry_s):
            if self._try_open():
                return

    def close(self) -> None:
        """Stop retrying; close the view and the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            view, store = self._view, self._store
            self._view = self._store = None
        try:
            if view is not None:
                view.close()
        finally:
            if store is not None:
                store.close()
