"""What ``GET /healthz`` reports: each component's status and the server's overall verdict.

The answer is built from in-memory snapshots only (the pipeline's counters, the state view's
last read), never from a live probe, so it answers in microseconds even while a store hangs.

- ``down`` (HTTP 503): the server cannot do its job: not started yet, or the event store is
  unavailable *and* the spool is full, so events are being refused.
- ``degraded`` (HTTP 200): serving, but something needs attention: the store is unavailable and
  events are spooling, a spool is replaying, the state backend failed its last read, or the
  controller reports a problem.
- ``ok`` (HTTP 200): everything is up.
"""

from __future__ import annotations

from typing import Any

from abllm.events import EventPipeline
from abllm.state import StateView

#: Spool use at which the spool counts as full for health (appends are refused at 100 %).
SPOOL_FULL_RATIO = 0.95


def _events(
    pipeline: EventPipeline | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    if pipeline is None:
        none = {"status": "none"}
        return none, none, {"count": 0}
    s = pipeline.stats
    full = s.spool_full or s.spool_bytes >= SPOOL_FULL_RATIO * s.spool_limit_bytes
    store = {"status": "up" if s.store_available else "down", "errors": s.store_errors}
    spool = {
        "status": "full" if full else ("empty" if s.spool_bytes == 0 else "replaying"),
        "bytes": s.spool_bytes,
        "limit_bytes": s.spool_limit_bytes,
        "replay_lag_s": round(s.replay_lag_s, 3),
        "buffered": s.buffered,
    }
    dead = {"count": s.dead_letters, "path": str(pipeline.dead_letters.path)}
    return store, spool, dead


def _state(view: StateView | None) -> dict[str, Any]:
    """The view's own report (connected/degraded/down, source, epoch, applied versions)."""
    if view is None:
        return {"status": "none"}
    return view.status().to_json()


def health(
    ready: bool,
    experiments: int,
    pipeline: EventPipeline | None,
    state_view: StateView | None,
    controller: dict[str, Any] | None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for ``/healthz``; see the module docstring for the verdicts."""
    store, spool, dead = _events(pipeline)
    state = _state(state_view)
    if not ready or (store["status"] == "down" and spool["status"] == "full"):
        verdict = "down"
    elif (
        store["status"] == "down"
        or (spool["status"] != "empty" and spool["status"] != "none")
        or state["status"] == "down"
        or (controller is not None and controller.get("status") not in (None, "up"))
    ):
        verdict = "degraded"
    else:
        verdict = "ok"
    body = {
        "status": "starting" if not ready else verdict,
        "experiments": experiments,
        "store": store,
        "spool": spool,
        "dead_letters": dead,
        "state": state,
        "controller": controller,
    }
    return (503 if verdict == "down" else 200), body
