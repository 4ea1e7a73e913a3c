"""This process's spool and the orphaned spools it adopted, as the pipeline's replayer sees them.

Each process writes its own directory under the spool folder; a directory whose ``flock`` is
free belongs to a process that died, and is adopted here (at start, then every ``scan_s``),
replayed with the process's own backlog and deleted once empty (:mod:`abllm.events.spool`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from abllm.events.spool import Spool, claim_orphans, open_own

log = logging.getLogger("abllm.events")


class SpoolSet:
    """``own`` takes new batches; ``next_to_replay`` picks what the replayer drains next."""

    def __init__(self, root: str | os.PathLike[str], limit_bytes: int, scan_s: float) -> None:
        self.root = Path(root)
        self.own = open_own(self.root, limit_bytes)
        self.scan_s = scan_s
        self._lock = threading.Lock()  # /healthz and drain read while the replayer adopts
        self._orphans = list(claim_orphans(self.root, limit_bytes))
        self._next_scan = time.monotonic() + scan_s

    def backlog(self) -> bool:
        """True while any batch, own or adopted, waits for replay."""
        with self._lock:
            orphans = list(self._orphans)
        return not self.own.is_empty() or any(not o.is_empty() for o in orphans)

    @property
    def pending_bytes(self) -> int:
        """Bytes waiting for replay in all held spools."""
        with self._lock:
            return self.own.pending_bytes + sum(o.pending_bytes for o in self._orphans)

    @property
    def replay_lag_s(self) -> float:
        """Age of the oldest segment waiting in any held spool."""
        with self._lock:
            return max(s.replay_lag_s for s in [self.own, *self._orphans])

    def scan_due(self) -> bool:
        """Whether it is time to look for orphans again."""
        return time.monotonic() >= self._next_scan

    def scan(self) -> int:
        """Adopt the spools of processes that died since the last look; how many were found."""
        self._next_scan = time.monotonic() + self.scan_s
        try:
            found = list(claim_orphans(self.root, self.own.limit_bytes))
        except OSError:
            log.exception("cannot look for orphaned spools in %s", self.root)
            return 0
        if found:
            log.warning(
                "replaying %d spool(s) left by processes that stopped: %s",
                len(found),
                ", ".join(o.directory.name for o in found),
            )
            with self._lock:
                self._orphans.extend(found)
        return len(found)

    def next_to_replay(self) -> Spool:
        """The own spool while it holds batches, else the first adopted one that does."""
        if not self.own.is_empty():
            return self.own
        with self._lock:
            orphans = list(self._orphans)
        for orphan in orphans:
            if orphan.is_empty() or orphan.peek() is None:
                self._retire(orphan)  # only torn records were left
            else:
                return orphan
        return self.own

    def replayed(self, spool: Spool) -> None:
        """After a record of ``spool`` was stored: an adopted spool now empty is deleted."""
        if spool is not self.own and spool.is_empty():
            self._retire(spool)

    def _retire(self, orphan: Spool) -> None:
        orphan.close_and_remove()  # fully replayed: nobody replays it again
        with self._lock:
            self._orphans.remove(orphan)

    def close(self) -> None:
        """Release every held spool; those still holding batches stay for the next process."""
        with self._lock:
            held, self._orphans = [self.own, *self._orphans], []
        for spool in held:
            spool.close_and_remove()
