"""``StateView``: the gateway's in-memory copy of runtime state, kept fresh in the background.

``get(experiment_id)`` is a dictionary lookup — no I/O on the request path. A push listener
(PostgreSQL NOTIFY, Redis pub/sub, in-process for the embedded store) re-reads an experiment
the moment it changes; a poller re-reads everything every ``poll_interval_s`` while the push
channel is down and every ``healthy_poll_s`` while it is up (a safety net for a silently lost
notice). When the backend is unreachable the view keeps the last state it saw (fail safe) and
optionally a cache file, so a restart while the backend is down still honours a kill.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from abllm.assign import RuntimeState
from abllm.state.base import Notice, StateStore, Subscription
from abllm.state.models import ExperimentState

log = logging.getLogger("abllm.state")

_DEFAULT = RuntimeState()


class StateView:
    """Read-mostly view of every experiment's runtime state.

    Example::

        view = StateView(open_state("memory://")).start()
        view.get("exp_summarize_v2").killed   # False until someone runs `abllm kill`
    """

    def __init__(
        self,
        store: StateStore,
        *,
        poll_interval_s: float = 0.25,
        healthy_poll_s: float = 5.0,
        cache_path: str | Path | None = None,
        on_change: Callable[[ExperimentState], None] | None = None,
    ) -> None:
        self.store = store
        self.poll_interval_s = poll_interval_s
        self.healthy_poll_s = healthy_poll_s
        self.cache_path = Path(cache_path) if cache_path else None
        self._on_change = on_change
        self._states: dict[str, ExperimentState] = {}
        self._runtime: dict[str, RuntimeState] = {}
        self._lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None
        self.last_ok: float | None = None
        self.last_error: str | None = None

    # -- hot path -----------------------------------------------------------------------------
    def get(self, experiment_id: str) -> RuntimeState:
        """The runtime overrides for ``experiment_id`` (defaults when none were recorded)."""
        return self._runtime.get(experiment_id, _DEFAULT)

    def state(self, experiment_id: str) -> ExperimentState | None:
        """The full runtime state last seen, or None."""
        return self._states.get(experiment_id)

    def states(self) -> dict[str, ExperimentState]:
        """A copy of every state last seen."""
        return dict(self._states)

    @property
    def push_alive(self) -> bool:
        """True while the push channel is connected."""
        return self._subscription is not None and self._subscription.alive

    @property
    def healthy(self) -> bool:
        """True when the last read of the backend succeeded."""
        return self.last_error is None and self.last_ok is not None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> StateView:
        """Load everything (or the cache file), then start listening and polling."""
        if not self.refresh() and self.cache_path is not None:
            self._load_cache()
        self._subscription = self.store.subscribe(self._notice)
        self._thread = threading.Thread(
            target=self._poll_loop, name="abllm-state-poll", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the listener and the poller (the store stays open: its owner closes it)."""
        self._stop.set()
        self._wake.set()
        if self._subscription is not None:
            self._subscription.close()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def __enter__(self) -> StateView:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- refresh ------------------------------------------------------------------------------
    def refresh(self, experiment_id: str | None = None) -> bool:
        """Re-read one experiment (or all); False and keep the old state when it fails."""
        try:
            if experiment_id is None:
                fresh = self.store.snapshot()
            else:
                one = self.store.get(experiment_id)
                fresh = {experiment_id: one} if one is not None else {}
        except Exception as exc:
            if self.last_error is None:
                log.warning("state store unreachable (%s); keeping the last state seen", exc)
            self.last_error = str(exc)
            return False
        if self.last_error is not None:
            log.info("state store reachable again")
        self.last_error = None
        self.last_ok = time.monotonic()
        self._merge(fresh)
        return True

    def _merge(self, fresh: dict[str, ExperimentState]) -> None:
        changed: list[ExperimentState] = []
        with self._lock:
            for eid, new in fresh.items():
                old = self._states.get(eid)
                if old is not None and old.version >= new.version:
                    continue  # never go back in time (a slow poll racing a push)
                self._states[eid] = new
                changed.append(new)
            if changed:
                runtime = dict(self._runtime)
                for new in changed:
                    runtime[new.experiment_id] = new.runtime()
                self._runtime = runtime  # one reference swap: readers never see a half update
        if changed:
            if self.cache_path is not None:
                self._save_cache()
            for new in changed:
                log.debug("state %s now v%d", new.experiment_id, new.version)
                if self._on_change is not None:
                    self._on_change(new)

    def _notice(self, notice: Notice) -> None:
        if notice.dropped:
            self._wake.set()  # poll now, and fast from now on (push_alive is False)
        elif notice.reconnected:
            self.refresh()
        elif notice.experiment_id is not None:
            self.refresh(notice.experiment_id)

    def _poll_loop(self) -> None:
        last_data_version = None
        while not self._stop.is_set():
            interval = self.healthy_poll_s if self.push_alive else self.poll_interval_s
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            probe = getattr(self.store, "data_version", None)
            if probe is not None and self.last_error is None:
                try:
                    current = probe()
                except Exception:
                    current = None
                if current is not None and current == last_data_version:
                    continue
                last_data_version = current
            self.refresh()

    # -- cache file ---------------------------------------------------------------------------
    def _save_cache(self) -> None:
        assert self.cache_path is not None
        with self._cache_lock:  # the listener and the poller may both get here
            data = {eid: json.loads(s.stored()) for eid, s in self._states.items()}
            tmp = self.cache_path.with_suffix(".tmp")
            try:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.cache_path)
            except OSError as exc:
                log.warning("cannot write the state cache %s: %s", self.cache_path, exc)

    def _load_cache(self) -> None:
        assert self.cache_path is not None
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.cache_path.read_text())
            self._merge({eid: ExperimentState.model_validate(s) for eid, s in data.items()})
            log.warning("state store unreachable at start: using the cache %s", self.cache_path)
