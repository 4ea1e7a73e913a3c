"""The local cache of the last state a serving process applied (``state-cache.json``).

Written after every change the view applies, read at start: before the store (so a store
reset while the process was stopped shows as an epoch change) and instead of it when it is
unreachable (so a kill holds across a restart during an outage). A cache written for another
state URL is ignored, so two deployments on one host cannot feed each other's state.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from abllm.state.models import ExperimentState

log = logging.getLogger("abllm.state")


@dataclass(frozen=True)
class Cached:
    """What a cache file holds: the store's epoch and every state, as last applied."""

    epoch: str | None
    states: dict[str, ExperimentState]


class StateCache:
    """One JSON file, replaced atomically (write a temporary file, then ``os.replace``)."""

    def __init__(self, path: str | Path, store_url: str) -> None:
        self.path = Path(path)
        self.store_url = store_url
        self._lock = threading.Lock()  # the listener and the poller may both save

    def save(self, epoch: str | None, states: dict[str, ExperimentState]) -> None:
        """Write the file; an I/O error is logged, never raised (serving goes on)."""
        data = {
            "store": self.store_url,
            "epoch": epoch,
            "states": {eid: json.loads(s.stored()) for eid, s in states.items()},
        }
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("cannot write the state cache %s: %s", self.path, exc)

    def load(self) -> Cached | None:
        """The cached state for this store URL, or None (absent, unreadable or another's)."""
        try:
            data = json.loads(self.path.read_text())
            if data.get("store") != self.store_url:
                log.warning(
                    "state cache %s belongs to %s, not %s: ignored",
                    self.path,
                    data.get("store"),
                    self.store_url,
                )
                return None
            states = {eid: ExperimentState.model_validate(s) for eid, s in data["states"].items()}
            return Cached(epoch=data.get("epoch"), states=states)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("state cache %s unreadable (%s): ignored", self.path, exc)
            return None
