"""``StateView``: the gateway's in-memory copy of runtime state, kept fresh in the background.

``get(experiment_id)`` is a dictionary lookup — no I/O on the request path. A push listener
(PostgreSQL NOTIFY, Redis pub/sub, in-process for the embedded store) re-reads an experiment
the moment it changes; a poller re-reads everything every ``poll_interval_s`` while the push
channel is down and every ``healthy_poll_s`` while it is up (a safety net for a silently lost
notice).

What the view follows and why:

- **The store is the truth.** Reads are serialised, so a read never returns older data than
  the one before it; the view takes what the store says even when its version is lower than
  the last one seen (a store restored from an older backup), so a kill written there applies.
- **Resets are detected** by the store's epoch (:mod:`abllm.state.liveness`): after a Redis
  restart that lost the data, a dropped schema or a replaced SQLite file, the view writes back
  every state the store lost (insert-if-absent: a change made on the fresh store wins), runs
  ``on_connect`` (``abllm serve`` re-registers its experiments) and re-adopts.
- **Fail safe.** When the backend is unreachable the view keeps the last state it saw and a
  cache file (``cache_path``), so a restart during the outage still honours a kill. With
  neither, every experiment is served as paused (control) until the backend answers.
- **Heartbeats.** About once a second, and at once after applying a change, the view records
  the versions it applied (:class:`~abllm.state.liveness.ProcessBeat`), so ``abllm kill`` can
  say how many live processes applied it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from abllm.assign import RuntimeState
from abllm.state.base import Notice, StateStore, Subscription
from abllm.state.cache import StateCache
from abllm.state.liveness import ProcessBeat, process_id
from abllm.state.models import ExperimentState

log = logging.getLogger("abllm.state")

_DEFAULT = RuntimeState()
#: Served before any state was read (backend down at start and no cache): control for everyone.
_SAFE = RuntimeState(paused=True)

Health = Literal["connected", "degraded", "down"]
Source = Literal["store", "cache", "defaults"]


@dataclass(frozen=True)
class StateStatus:
    """What ``/healthz`` reports about runtime state.

    ``connected``: reads succeed and changes are pushed (or the backend is embedded);
    ``degraded``: reads succeed but the push channel is down (changes arrive by polling);
    ``down``: the backend is unreachable and the process serves ``source`` (the last state it
    saw, the cache file, or control-safe defaults).
    """

    status: Health
    backend: str
    source: Source
    epoch: str | None
    resets: int
    applied: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON for ``/healthz``."""
        return {
            "status": self.status,
            "backend": self.backend,
            "source": self.source,
            "epoch": self.epoch,
            "resets": self.resets,
            "applied": dict(self.applied),
            "last_error": self.last_error,
        }


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
        on_connect: Callable[[StateStore], object] | None = None,
        name: str = "abllm",
        heartbeat_s: float | None = 1.0,
    ) -> None:
        self.store = store
        self.poll_interval_s = poll_interval_s
        self.healthy_poll_s = healthy_poll_s
        self.cache_path = Path(cache_path) if cache_path else None
        self._cache = StateCache(self.cache_path, store.url) if self.cache_path else None
        self.name = name
        self.heartbeat_s = heartbeat_s
        self.process_id = process_id()
        self._on_change = on_change
        self._on_connect = on_connect
        self._states: dict[str, ExperimentState] = {}
        self._runtime: dict[str, RuntimeState] = {}
        self._fallback = _SAFE
        self._source: Source = "defaults"
        self._lock = threading.Lock()
        self._refresh_lock = threading.RLock()  # serialised reads never go back in time
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._beat_wake = threading.Event()
        self._subscription: Subscription | None = None
        self._threads: list[threading.Thread] = []
        self.epoch: str | None = None
        self.resets = 0
        self.last_ok: float | None = None
        self.last_error: str | None = None

    # -- hot path -----------------------------------------------------------------------------
    def get(self, experiment_id: str) -> RuntimeState:
        """The runtime overrides for ``experiment_id`` (defaults when none were recorded)."""
        return self._runtime.get(experiment_id, self._fallback)

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

    def applied(self) -> dict[str, int]:
        """The state version applied per experiment."""
        return {eid: s.version for eid, s in self._states.items()}

    def status(self) -> StateStatus:
        """Connected, degraded or down, with the epoch and applied versions (for /healthz)."""
        health: Health
        if not self.healthy:
            health = "down"
        elif self.push_alive or self.store.kind == "embedded":
            health = "connected"
        else:
            health = "degraded"
        return StateStatus(
            status=health,
            backend=self.store.kind,
            source=self._source,
            epoch=self.epoch,
            resets=self.resets,
            applied=self.applied(),
            last_error=self.last_error,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> StateView:
        """Load the cache file, then the store, then start listening, polling and beating.

        The cache comes first so that a store reset while this process was stopped (its epoch
        differs from the cached one) is noticed, and what it lost is written back.
        """
        cached = self._load_cache()
        if not self.refresh():
            if cached:
                log.warning(
                    "state store unreachable at start: serving the cache %s", self.cache_path
                )
            else:
                log.warning(
                    "state store unreachable at start and no cache: control for every "
                    "experiment until it answers"
                )
        self._subscription = self.store.subscribe(self._notice)
        self._spawn(self._poll_loop, "abllm-state-poll")
        if self.heartbeat_s is not None:
            self._spawn(self._beat_loop, "abllm-state-heartbeat")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        """Stop the threads and drop this process's heartbeat (its owner closes the store)."""
        self._stop.set()
        self._wake.set()
        self._beat_wake.set()
        if self._subscription is not None:
            self._subscription.close()
        for thread in self._threads:
            thread.join(timeout=3)
        if self.heartbeat_s is not None:
            with contextlib.suppress(Exception):  # the store may be down or closed: best effort
                self.store.forget(self.process_id)

    def __enter__(self) -> StateView:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- refresh ------------------------------------------------------------------------------
    def refresh(self, experiment_id: str | None = None) -> bool:
        """Re-read one experiment (or all); False and keep the old state when it fails."""
        with self._refresh_lock:
            try:
                ok = self._refresh(experiment_id)
            except Exception as exc:
                if self.last_error is None:
                    log.warning("state store unreachable (%s); keeping the last state seen", exc)
                self.last_error = str(exc) or type(exc).__name__
                return False
            return ok

    def _refresh(self, experiment_id: str | None) -> bool:
        epoch = self.store.epoch()
        reconnected = self.last_ok is None or self.last_error is not None
        if experiment_id is not None and epoch == self.epoch and not reconnected:
            one = self.store.get(experiment_id)
            if one is not None or experiment_id not in self._states:
                self._reached(epoch)
                self._merge({experiment_id: one} if one is not None else {})
                return True
            # the store lost a state this view holds: read everything below
        fresh = self.store.snapshot()
        reset = self.epoch is not None and epoch != self.epoch
        if reset:
            self.resets += 1
            log.warning(
                "state store %s was reset (epoch %s -> %s); re-adopting its state",
                self.store.url,
                self.epoch,
                epoch,
            )
        lost = {eid: s for eid, s in self._states.items() if eid not in fresh}
        for state in lost.values():
            self.store.restore(
                state,
                actor=f"{self.name} {self.process_id}",
                reason=f"the state store lost this state (epoch {self.epoch} -> {epoch}); "
                "restored the last version this process applied",
            )
        if (reconnected or reset) and self._on_connect is not None:
            try:
                self._on_connect(self.store)
            except Exception as exc:  # e.g. a refused re-registration: keep serving what we have
                log.error("state store (re)connect hook failed: %s", exc)
        if lost or ((reconnected or reset) and self._on_connect is not None):
            fresh = self.store.snapshot()
        if self.last_error is not None:
            log.info("state store reachable again")
        self._reached(epoch)
        self._merge(fresh, force=reset)
        return True

    def _reached(self, epoch: str) -> None:
        self.epoch = epoch
        self.last_error = None
        self.last_ok = time.monotonic()
        self._fallback = _DEFAULT
        self._source = "store"

    def _merge(self, fresh: dict[str, ExperimentState], *, force: bool = False) -> None:
        """Take every state whose version differs from the one held (or all, after a reset)."""
        changed: list[ExperimentState] = []
        with self._lock:
            for eid, new in fresh.items():
                old = self._states.get(eid)
                if old is not None and old.version == new.version and not force:
                    continue
                if old is not None and old.version > new.version and not force:
                    log.warning(
                        "state %s went back from v%d to v%d in the store (restored from an "
                        "older copy?); following the store",
                        eid,
                        old.version,
                        new.version,
                    )
                self._states[eid] = new
                changed.append(new)
            if changed:
                runtime = dict(self._runtime)
                for new in changed:
                    runtime[new.experiment_id] = new.runtime()
                self._runtime = runtime  # one reference swap: readers never see a half update
        if changed:
            self._beat_wake.set()
            if self._cache is not None:
                self._cache.save(self.epoch, self._states)
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

    # -- heartbeats ---------------------------------------------------------------------------
    def beat(self) -> ProcessBeat:
        """This process's heartbeat now."""
        return ProcessBeat(
            process_id=self.process_id,
            name=self.name,
            epoch=self.epoch,
            applied=self.applied(),
            connected=self.healthy,
            ts=datetime.now(UTC),
        )

    def _beat_loop(self) -> None:
        assert self.heartbeat_s is not None
        while not self._stop.is_set():
            try:
                self.store.heartbeat(self.beat())
            except Exception as exc:  # the store is down: the poller reports it, keep trying
                log.debug("state heartbeat failed: %s", exc)
            self._beat_wake.wait(self.heartbeat_s)
            self._beat_wake.clear()

    def _load_cache(self) -> bool:
        """Adopt the cache file written for this store; False when there is none."""
        cached = self._cache.load() if self._cache is not None else None
        if cached is None:
            return False
        self.epoch = cached.epoch
        self._merge(cached.states)
        self._fallback = _DEFAULT
        self._source = "cache"
        return True
