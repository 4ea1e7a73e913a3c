"""Experiments and runtime state for local assignment: a fixed file, or synced from a server.

The SDK assigns units in-process (no network call per ``assign``), so it needs what the server
knows: the experiment definitions and each experiment's runtime state (kill switch, stage
weights, paused arms, winner). :class:`ConfigSync` fetches both from ``GET /v1/config`` and
refreshes them in a background thread. A failed refresh keeps the last good copy (DESIGN.md
"fail safe"): an unreachable server freezes the client's view, it never empties it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from abllm.assign import RuntimeState
from abllm.client.http import Unreachable, request
from abllm.config import Experiment, ExperimentFile, parse_experiments
from abllm.errors import NotFound, StoreUnavailable

if TYPE_CHECKING:
    from abllm.gateway import StateReader

log = logging.getLogger("abllm.client")

CONFIG_PATH = "/v1/config"
_DEFAULT_STATE = RuntimeState()


@dataclass(frozen=True)
class Snapshot:
    """One consistent view: the experiments, their ids and aliases, and their runtime state.

    Replaced as a whole on every refresh, so a reader never mixes an old config with new state.
    """

    config: ExperimentFile
    states: Mapping[str, RuntimeState] = field(default_factory=dict)
    by_name: Mapping[str, Experiment] = field(default_factory=dict)
    reader: StateReader | None = None  # live state (a file config with a StateView)

    @classmethod
    def build(cls, config: ExperimentFile, states: Mapping[str, RuntimeState]) -> Snapshot:
        """Index ids and aliases (an id wins over another experiment's alias)."""
        by_name: dict[str, Experiment] = {exp.id: exp for exp in config.experiments}
        for exp in config.experiments:
            for alias in exp.aliases:
                by_name.setdefault(alias, exp)
        return cls(config, dict(states), by_name)

    def find(self, name: str) -> Experiment | None:
        """The experiment with this id or alias, or None."""
        return self.by_name.get(name)

    def experiment(self, name: str) -> Experiment:
        """The experiment with this id or alias; :class:`NotFound` naming the known ones."""
        exp = self.by_name.get(name)
        if exp is None:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise NotFound(f"experiment_id: no experiment {name!r} (known: {known})")
        return exp

    def state(self, experiment_id: str) -> RuntimeState:
        """The runtime overrides for ``experiment_id`` (defaults when none are known)."""
        if self.reader is not None:
            return self.reader.get(experiment_id)
        return self.states.get(experiment_id, _DEFAULT_STATE)


def runtime_from_json(data: Mapping[str, Any]) -> RuntimeState:
    """Inverse of ``abllm.state.runtime_json`` (the ``state`` entries of ``GET /v1/config``)."""
    weights = data.get("weights")
    return RuntimeState(
        killed=bool(data.get("killed", False)),
        paused=bool(data.get("paused", False)),
        traffic=None if data.get("traffic") is None else float(data["traffic"]),
        weights=None if weights is None else {str(k): float(v) for k, v in weights.items()},
        paused_variants=frozenset(str(v) for v in data.get("paused_variants") or ()),
        winner=data.get("winner"),
        winner_percent=(
            None if data.get("winner_percent") is None else float(data["winner_percent"])
        ),
        version=int(data.get("version", 0)),
    )


class StaticSource:
    """A fixed experiment file, with runtime state from an optional reader (``StateView``)."""

    def __init__(self, config: ExperimentFile, state: StateReader | None = None) -> None:
        built = Snapshot.build(config, {})
        self._snapshot = Snapshot(built.config, {}, built.by_name, state)

    @property
    def snapshot(self) -> Snapshot:
        """The file, with the reader's current state when there is one."""
        return self._snapshot

    def refresh(self) -> bool:
        """Nothing to fetch."""
        return True

    def close(self) -> None:
        """Nothing to stop (the state reader belongs to the caller)."""


class ConfigSync:
    """Experiments and state from ``GET {server_url}/v1/config``, refreshed every ``refresh_s``.

    ``start()`` fetches once before returning. When that first fetch fails, the ``fallback``
    file (the ``config`` given to ``Client``) serves until the server answers; with no fallback
    :class:`~abllm.errors.StoreUnavailable` is raised, since there is nothing to assign with.
    """

    def __init__(
        self,
        server_url: str,
        *,
        headers: Mapping[str, str],
        refresh_s: float = 30.0,
        timeout_s: float = 10.0,
        fallback: ExperimentFile | None = None,
    ) -> None:
        self.url = server_url + CONFIG_PATH
        self.headers = {**headers, "Accept": "application/json"}
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self._snapshot: Snapshot | None = (
            Snapshot.build(fallback, {}) if fallback is not None else None
        )
        self._raw_experiments: bytes | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_ok: float | None = None
        self.last_error: str | None = None

    @property
    def snapshot(self) -> Snapshot:
        """The last good view (never empty once started)."""
        snap = self._snapshot
        assert snap is not None, "ConfigSync.start() was not called"
        return snap

    def start(self) -> ConfigSync:
        """Fetch once, then keep refreshing in a daemon thread."""
        if not self.refresh() and self._snapshot is None:
            raise StoreUnavailable(
                f"cannot load experiments from {self.url} ({self.last_error}); pass "
                "config= (a YAML file) to start with it while the server is unreachable"
            )
        self._thread = threading.Thread(target=self._loop, name="abllm-client-sync", daemon=True)
        self._thread.start()
        return self

    def refresh(self) -> bool:
        """Fetch now; False (keeping the last good view) when the server fails or is away."""
        try:
            answer = request("GET", self.url, headers=self.headers, timeout_s=self.timeout_s)
            if not answer.ok:
                raise Unreachable(f"GET {self.url}: HTTP {answer.status}")
            self._install(answer.body)
        except Exception as exc:  # the sync thread must outlive any bad answer
            if self.last_error is None:
                log.warning("abllm config sync failed (%s); keeping the last good config", exc)
            self.last_error = str(exc)
            return False
        if self.last_error is not None:
            log.info("abllm config sync works again")
        self.last_error = None
        self.last_ok = time.monotonic()
        return True

    def _install(self, body: bytes) -> None:
        data = orjson.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("experiments"), list):
            raise ValueError("the answer has no `experiments` list")
        raw = orjson.dumps(data["experiments"], option=orjson.OPT_SORT_KEYS)
        current = self._snapshot
        if current is not None and raw == self._raw_experiments:
            config = current.config  # unchanged: skip re-validating every experiment
        else:
            config = parse_experiments({"experiments": data["experiments"]}, where=self.url)
        states = {
            str(eid): runtime_from_json(value)
            for eid, value in (data.get("state") or {}).items()
            if isinstance(value, dict)
        }
        self._snapshot = Snapshot.build(config, states)  # one reference swap
        self._raw_experiments = raw

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def close(self) -> None:
        """Stop refreshing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)
