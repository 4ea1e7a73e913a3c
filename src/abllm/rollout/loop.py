"""The controller's schedule: each experiment checked every ``rollout.check_interval_s``.

:class:`ControllerLoop` runs a :class:`~abllm.rollout.controller.RolloutController` in one
daemon thread of ``abllm serve`` (or of ``abllm rollout run``): the analysis queries run there,
never on the server's event loop. Each watched experiment has its own due time; after a check
the next one is due ``check_interval_s`` later. :meth:`ControllerLoop.status` is what
``/healthz`` shows: per experiment the last check, how late the next one is (``lag_s``), who
holds the lease and the last action or error.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from abllm.errors import AbllmError
from abllm.rollout.controller import Outcome, RolloutController
from abllm.state.lease import controller_lease as lease_name

log = logging.getLogger("abllm.rollout")


class ControllerStatus(Protocol):
    """What ``/healthz`` reads of the in-process controller (memory only, no I/O)."""

    def status(self) -> dict[str, Any]: ...


@dataclass
class _Track:
    """One experiment's schedule and last result in this process."""

    interval_s: float
    due: float  # time.monotonic() of the next check
    last_at: datetime | None = None
    last_s: float | None = None
    last: Outcome | None = None
    holder: str | None = None


class ControllerLoop:
    """Ticks each watched experiment at its interval in a background thread.

    Example::

        loop = ControllerLoop(controller).start()
        loop.status()   # {"running": True, "holder": "host:123", "experiments": {...}}
        loop.close()    # stops the thread and releases the leases
    """

    def __init__(self, controller: RolloutController) -> None:
        self.controller = controller
        now = time.monotonic()
        self._tracks = {e.id: _Track(controller.interval_of(e), now) for e in controller.watched}
        self._by_id = {e.id: e for e in controller.watched}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> list[Outcome]:
        """Check every experiment whose time has come; returns what the checks did."""
        outcomes = []
        for experiment_id, track in self._tracks.items():
            if time.monotonic() < track.due:
                continue
            started = time.monotonic()
            outcome = self.controller.tick_experiment(self._by_id[experiment_id])
            holder = self._holder(experiment_id)
            ended = time.monotonic()
            with self._lock:
                track.last, track.last_at, track.holder = outcome, datetime.now(UTC), holder
                track.last_s = ended - started
                track.due = max(track.due + track.interval_s, started + 0.001)
                if track.due < ended:  # fell behind by more than a period: do not burst
                    track.due = ended + track.interval_s
            outcomes.append(outcome)
        self.controller.run_side_tasks()
        return outcomes

    def _holder(self, experiment_id: str) -> str | None:
        """Who holds the lease now (read here, on the loop's thread, for :meth:`status`)."""
        leases = self.controller.leases
        if leases is None:
            return self.controller.holder
        if self.controller.holds(experiment_id):
            return self.controller.holder
        try:
            info = leases.holder(lease_name(experiment_id))
        except AbllmError as exc:
            return f"unknown ({exc.message})"
        return info.holder if info is not None else None

    def wait_s(self) -> float:
        """Seconds until the next check falls due."""
        if not self._tracks:
            return 60.0
        return max(0.0, min(t.due for t in self._tracks.values()) - time.monotonic())

    def run(self) -> None:
        """Check experiments as they fall due until :meth:`close`."""
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # the loop must outlive any one failure
                log.exception("rollout controller loop failed; retrying")
            self._stop.wait(min(self.wait_s(), 60.0))

    def start(self) -> ControllerLoop:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="abllm-rollout", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """The controller's health as JSON (shown by ``/healthz``); memory only, no I/O.

        ``lag_s`` is how far past its due time a check is (0 when on time): a growing lag
        means the checks take longer than their interval, or the thread is stuck. ``status``
        is ``down`` when the thread is not running, ``degraded`` when a check failed or lags
        by more than three intervals, else ``up`` (``/healthz`` turns degraded on anything
        but ``up``).
        """
        now = time.monotonic()
        experiments: dict[str, Any] = {}
        with self._lock:
            tracks = list(self._tracks.items())
        for experiment_id, t in tracks:
            last = t.last
            experiments[experiment_id] = {
                "interval_s": t.interval_s,
                "last_tick": t.last_at.isoformat() if t.last_at else None,
                "last_tick_s": round(t.last_s, 4) if t.last_s is not None else None,
                "lag_s": round(max(0.0, now - t.due), 3) if self.running else None,
                "lease_holder": t.holder,
                "acting": self.controller.holds(experiment_id) and last is not None,
                "last_action": last.decision.action if last is not None else None,
                "last_error": last.error if last is not None else None,
            }
        troubled = any(
            e["last_error"] or (e["lag_s"] or 0.0) > 3 * e["interval_s"]
            for e in experiments.values()
        )
        return {
            "status": "down" if not self.running else ("degraded" if troubled else "up"),
            "running": self.running,
            "holder": self.controller.holder,
            "experiments": experiments,
        }

    def close(self) -> None:
        """Stop the thread, then release the leases so another process takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.controller.close()
