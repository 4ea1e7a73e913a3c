"""What the dashboard reads from ``request.app.state.abllm``, each piece optional.

The server keeps an ``AppState`` there (``gateway.config``, ``store``, ``pipeline``); the
runtime state may be reachable through the gateway's state reader (an ``abllm.state.StateView``
carries the full :class:`ExperimentState` and its backend, which keeps the audit log) or a
``state_store`` attribute. Every lookup is duck-typed and tolerant: a server started without a
store or a state backend still renders, with "no data yet" where figures would be.

Analyses are cached for ``ttl_s`` seconds per experiment, so an auto-refreshing overview of many
experiments costs one analysis per experiment per interval, not one per viewer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from abllm.analysis import DailyPoint, ExperimentResult, analyze, daily_results
from abllm.analysis.engine import primary_metric
from abllm.config import Experiment
from abllm.events import EventStore
from abllm.state import AuditEntry, ExperimentState

if TYPE_CHECKING:
    from abllm.state import StateStore

log = logging.getLogger("abllm.dashboard")

T = TypeVar("T")


@runtime_checkable
class _FullStateReader(Protocol):
    """``StateView.state``: the full runtime state last seen."""

    def state(self, experiment_id: str) -> ExperimentState | None: ...


@runtime_checkable
class _RuntimeReader(Protocol):
    """The gateway's ``StateReader``: runtime overrides only."""

    def get(self, experiment_id: str) -> Any: ...


@runtime_checkable
class _AuditSource(Protocol):
    """A state backend that keeps the audit log."""

    def audit(self, experiment_id: str, limit: int = 100) -> list[AuditEntry]: ...


@dataclass(frozen=True)
class Runtime:
    """What is happening to an experiment now (empty when no state is recorded)."""

    known: bool = False
    killed: bool = False
    paused: bool = False
    paused_variants: tuple[str, ...] = ()
    traffic: float | None = None
    weights: Mapping[str, float] | None = None
    winner: str | None = None
    winner_percent: float | None = None
    status: str | None = None
    stage: int | None = None
    winner_stage: int | None = None
    stage_started_at: datetime | None = None
    held: bool = False
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None

    @classmethod
    def of_state(cls, s: ExperimentState) -> Runtime:
        """From the full state (stage, status and who changed it last)."""
        rt = s.runtime()
        return cls(
            known=s.version > 0,
            killed=s.killed,
            paused=rt.paused,
            paused_variants=tuple(s.paused_variants),
            traffic=s.traffic,
            weights=dict(s.weights) if s.weights is not None else None,
            winner=s.winner,
            winner_percent=rt.winner_percent,
            status=s.status,
            stage=s.stage,
            winner_stage=s.winner_stage,
            stage_started_at=s.stage_started_at,
            held=s.held,
            version=s.version,
            updated_at=s.updated_at,
            updated_by=s.updated_by,
        )

    @classmethod
    def of_overrides(cls, rt: Any) -> Runtime:
        """From an ``abllm.assign.RuntimeState`` (what a plain gateway state reader knows)."""
        weights = getattr(rt, "weights", None)
        version = int(getattr(rt, "version", 0) or 0)
        killed = bool(getattr(rt, "killed", False))
        paused = bool(getattr(rt, "paused", False))
        paused_variants = tuple(sorted(getattr(rt, "paused_variants", ()) or ()))
        winner = getattr(rt, "winner", None)
        return cls(
            known=version > 0 or killed or paused or bool(paused_variants) or winner is not None,
            killed=killed,
            paused=paused,
            paused_variants=paused_variants,
            traffic=getattr(rt, "traffic", None),
            weights=dict(weights) if weights is not None else None,
            winner=winner,
            winner_percent=getattr(rt, "winner_percent", None),
            version=version,
        )


@dataclass(frozen=True)
class Computed(Generic[T]):
    """An outcome: the value, or the error message that replaced it."""

    value: T | None
    error: str | None
    computed: float  # time.monotonic() of the computation


@dataclass
class TTLCache(Generic[T]):
    """Values kept ``ttl_s`` seconds per key (thread-safe; routes run in a worker pool)."""

    ttl_s: float = 5.0
    _items: dict[tuple[str, ...], Computed[T]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[str, ...], compute: Callable[[], T]) -> Computed[T]:
        """The cached value for ``key``, recomputed when older than ``ttl_s``.

        An exception from ``compute`` is kept as the entry's ``error`` (and cached like a
        value, so a broken store is not hammered by every refresh).
        """
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and now - hit.computed < self.ttl_s:
            return hit
        try:
            entry = Computed(compute(), None, time.monotonic())
        except Exception as exc:  # shown on the page: a dashboard never answers 500
            log.warning("dashboard computation %s failed: %s", key, exc)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            entry = Computed(None, f"{type(exc).__name__}: {message}", time.monotonic())
        with self._lock:
            if len(self._items) > 1000:  # experiments come and go; never grow without bound
                self._items.clear()
            self._items[key] = entry
        return entry


@dataclass
class Caches:
    """The dashboard's caches, one per router."""

    results: TTLCache[ExperimentResult]
    daily: TTLCache[list[DailyPoint]]

    @classmethod
    def make(cls, ttl_s: float) -> Caches:
        """Both caches with the same lifetime."""
        return cls(TTLCache(ttl_s), TTLCache(ttl_s))


class Sources:
    """Typed access to the pieces of ``app.state.abllm`` the dashboard uses."""

    def __init__(self, app_state: Any, caches: Caches) -> None:
        self._st = app_state
        self._caches = caches

    # -- configuration ------------------------------------------------------------------------
    def experiments(self) -> list[Experiment]:
        """The served experiments, in config order (none when the config is missing)."""
        config = getattr(getattr(self._st, "gateway", None), "config", None)
        return list(getattr(config, "experiments", None) or [])

    def experiment(self, experiment_id: str) -> Experiment | None:
        """One experiment by id or alias, or None."""
        for exp in self.experiments():
            if experiment_id == exp.id or experiment_id in exp.aliases:
                return exp
        return None

    # -- events -------------------------------------------------------------------------------
    @property
    def store(self) -> EventStore | None:
        """The event store, or None when the server runs without one."""
        store: EventStore | None = getattr(self._st, "store", None)
        return store

    def flush(self) -> None:
        """Make what the gateway emitted a moment ago visible (best effort, bounded)."""
        pipeline = getattr(self._st, "pipeline", None)
        if pipeline is None:
            return
        try:
            pipeline.flush(timeout=2.0)
        except Exception as exc:  # a slow store: show what is already stored
            log.info("dashboard flush did not finish: %s", exc)

    def analysis(self, experiment: Experiment) -> Computed[ExperimentResult] | None:
        """The (cached) analysis, or None when there is no store.

        The SRM check compares against the current stage's weights when a rollout set them
        (as the rollout controller does).
        """
        store = self.store
        if store is None:
            return None
        weights = self.runtime(experiment.id).weights

        def compute() -> ExperimentResult:
            self.flush()
            return analyze(experiment, store, weights=weights)

        key = (experiment.id, str(experiment.version))
        return self._caches.results.get(key, compute)

    def daily(
        self, experiment: Experiment, metric: str | None = None, *, hourly: bool = False
    ) -> Computed[list[DailyPoint]] | None:
        """A metric's cumulative points per day or hour (cached; the primary metric by
        default), or None without a store or a metric."""
        store = self.store
        metric = metric or primary_metric(experiment)
        if store is None or metric is None:
            return None
        name = metric

        def compute() -> list[DailyPoint]:
            return daily_results(experiment, store, name, max_days=90, hourly=hourly)

        key = (experiment.id, str(experiment.version), metric, "h" if hourly else "d")
        return self._caches.daily.get(key, compute)

    # -- runtime state ------------------------------------------------------------------------
    def _readers(self) -> list[Any]:
        reader = getattr(getattr(self._st, "gateway", None), "state", None)
        candidates = [
            getattr(self._st, "state_store", None),
            getattr(self._st, "state", None),
            reader,
            getattr(reader, "store", None),
        ]
        return [c for c in candidates if c is not None]

    def runtime(self, experiment_id: str) -> Runtime:
        """The runtime state: full state when a reader has it, else the overrides, else none."""
        readers = self._readers()
        try:
            for r in readers:
                if isinstance(r, _FullStateReader):
                    full = r.state(experiment_id)
                    if isinstance(full, ExperimentState):
                        return Runtime.of_state(full)
            for r in readers:
                # A StateStore's ``get`` returns the full state (or None); a reader's the overrides.
                if isinstance(r, _RuntimeReader):
                    got = r.get(experiment_id)
                    if isinstance(got, ExperimentState):
                        return Runtime.of_state(got)
                    if got is not None:
                        return Runtime.of_overrides(got)
        except Exception as exc:  # state backend down: the page says "unknown", never 500
            log.warning("runtime state of %s unreadable: %s", experiment_id, exc)
        return Runtime()

    def state_store(self) -> StateStore | None:
        """The state backend changes are written to, or None when the server has none."""
        from abllm.state import StateStore

        return next((r for r in self._readers() if isinstance(r, StateStore)), None)

    def controller(self, experiment_id: str) -> str | None:
        """Who runs the rollout controller for this experiment now (its lease holder), or
        None when no process does (then nothing advances or pauses on its own)."""
        from abllm.state import StateStore
        from abllm.state.lease import controller_lease, leases_for

        for r in self._readers():
            if isinstance(r, StateStore):
                try:
                    info = leases_for(r).holder(controller_lease(experiment_id))
                except Exception as exc:  # the page says "unknown", never 500
                    log.warning("controller lease of %s unreadable: %s", experiment_id, exc)
                    return None
                return info.holder if info is not None else None
        return None

    def audit(self, experiment_id: str, limit: int = 50) -> list[AuditEntry] | None:
        """The newest audit rows (oldest first), or None when no backend keeps them."""
        for r in self._readers():
            if isinstance(r, _AuditSource):
                return r.audit(experiment_id, limit=limit)
        return None
