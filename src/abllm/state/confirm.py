"""How many live processes applied a change: what ``abllm kill`` and the admin API report.

A process counts as live when its heartbeat is under :data:`~abllm.state.liveness.LIVE_S`
old, and as having applied version ``v`` of an experiment when its heartbeat names the store's
current epoch and a version from ``v`` up to the store's current one (a process still holding
a higher version from before a restore has not applied the change). Processes that beat in
the last hour but not lately are listed as *silent*: stopped without closing, or cut off from
the store, and then possibly still serving what they last saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from abllm.state.base import StateStore
from abllm.state.liveness import LIVE_S, ProcessBeat

#: Beats older than this are not reported as silent any more (a process that crashed long ago).
SILENT_S = 600.0
#: How long to look for a first live heartbeat (processes beat every second; a reset wipes them).
EMPTY_WAIT_S = 1.5


@dataclass(frozen=True)
class Confirmation:
    """Who applied ``version`` of ``experiment_id`` within ``waited_s`` seconds."""

    experiment_id: str
    version: int
    epoch: str
    applied: list[ProcessBeat]
    pending: list[ProcessBeat]
    silent: list[ProcessBeat] = field(default_factory=list)
    waited_s: float = 0.0

    @property
    def live(self) -> int:
        """Live processes (applied or not)."""
        return len(self.applied) + len(self.pending)

    @property
    def complete(self) -> bool:
        """True when every live process applied the change."""
        return not self.pending

    def summary(self) -> str:
        """``applied by 2 of 3 live processes``."""
        noun = "process" if self.live == 1 else "processes"
        return f"applied by {len(self.applied)} of {self.live} live {noun}"

    def warnings(self) -> list[str]:
        """One line per reason to worry, for the CLI's stderr."""
        now = datetime.now(UTC)
        out = []
        for beat in self.pending:
            held = beat.applied.get(self.experiment_id)
            at = f"v{held}" if held is not None else "no state"
            if beat.epoch != self.epoch:
                at += f" of epoch {beat.epoch}"
            reach = "reachable" if beat.connected else "unreachable"
            out.append(
                f"{beat.name} {beat.process_id} has not applied v{self.version} after "
                f"{self.waited_s:.1f} s (at {at}; the store is {reach} from it)"
            )
        out.extend(
            f"{beat.name} {beat.process_id} has been silent for {beat.age_s(now):.0f} s "
            "(stopped, or cut off from the state store and serving what it last saw)"
            for beat in self.silent
        )
        if self.live == 0:
            out.append(
                "no live abllm process reads this state store: the change applies when one "
                "starts (check that the gateways use the same --store/--state)"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``applied`` object of the admin API's responses."""
        return {
            "version": self.version,
            "epoch": self.epoch,
            "live": self.live,
            "applied": len(self.applied),
            "complete": self.complete,
            "waited_s": round(self.waited_s, 3),
            "pending": [
                {
                    "process": b.process_id,
                    "name": b.name,
                    "version": b.applied.get(self.experiment_id),
                }
                for b in self.pending
            ],
            "silent": [b.process_id for b in self.silent],
            "message": self.summary(),
        }


def _has_applied(
    beat: ProcessBeat, experiment_id: str, version: int, current: int, epoch: str
) -> bool:
    held = beat.applied.get(experiment_id)
    return beat.epoch == epoch and held is not None and version <= held <= current


def confirm(
    store: StateStore,
    experiment_id: str,
    version: int,
    *,
    timeout_s: float = 3.0,
    poll_s: float = 0.05,
    live_s: float = LIVE_S,
) -> Confirmation:
    """Wait up to ``timeout_s`` until every live process applied ``version``; say who did.

    Example::

        new = kill(store, "exp", actor="ops")
        print(confirm(store, "exp", new.version).summary())   # applied by 3 of 3 live processes
    """
    start = time.monotonic()
    while True:
        epoch = store.epoch()
        current_state = store.get(experiment_id)
        current = current_state.version if current_state is not None else version
        now = datetime.now(UTC)
        beats = store.processes()
        live = [b for b in beats if b.age_s(now) <= live_s]
        silent = [b for b in beats if live_s < b.age_s(now) <= SILENT_S]
        applied = [b for b in live if _has_applied(b, experiment_id, version, current, epoch)]
        pending = [b for b in live if b not in applied]
        waited = time.monotonic() - start
        # with no live process yet, give beats wiped by a reset a moment to come back
        settled = bool(live) or waited >= min(timeout_s, EMPTY_WAIT_S)
        if (not pending and settled) or waited >= timeout_s:
            return Confirmation(experiment_id, version, epoch, applied, pending, silent, waited)
        time.sleep(poll_s)
