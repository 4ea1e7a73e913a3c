"""``Client``: assign locally, record exposures and outcomes, wrap an OpenAI client.

The client is the in-process twin of the gateway: the same pure ``assign`` over the same
experiments and runtime state, the same event builders (``abllm.gateway.measure``), so a unit
gets the same variant and the same events whether the application calls the gateway over HTTP
or uses this SDK.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from abllm.assign import Assignment, assign
from abllm.client.http import check_base_url
from abllm.client.model import ClientSettings, Served, counted
from abllm.client.owned_state import OwnedState
from abllm.client.sinks import HttpSender, LocalSink, SenderSettings, Sink
from abllm.client.sync import ConfigSync, Snapshot, StaticSource
from abllm.config import Experiment, ExperimentFile, load_experiments
from abllm.errors import ValidationError
from abllm.events import Event, EventStore, open_store, parse_event
from abllm.telemetry import pseudonymous_id, redact

if TYPE_CHECKING:
    from abllm.client.openai_wrap import OpenAIWrapper
    from abllm.gateway import Assigner, StateReader

log = logging.getLogger("abllm.client")

DEFAULT_CLIENT_SPOOL = "./abllm-data/client-spool"


class Client:
    """The Python SDK.

    ```python
    from abllm import Client
    client = Client("experiments.yaml", store="duckdb:///./abllm-data/events.duckdb")
    # or: Client(server_url="http://127.0.0.1:8080", api_key="...")
    a = client.assign("exp_summarize_v2", "user-42")     # local, no network call
    client.track("exp_summarize_v2", "user-42", rating=5, thumbs_up=True)
    llm = client.wrap_openai(OpenAI())                    # runs the experiment on every call
    llm.chat.completions.create(model="exp_summarize_v2", user="user-42", messages=[...])
    client.close()
    ```

    ``config`` is a YAML path or an ``ExperimentFile``. With ``server_url`` the experiments and
    their runtime state (kill switch, stage weights) come from ``GET {server_url}/v1/config``,
    refreshed every ``refresh_s`` seconds (``config``, when also given, serves until the first
    fetch succeeds); events are batched to ``POST {server_url}/v1/events``. Without
    ``server_url`` events go to ``store`` (an ``open_store`` URL; default ``ABLLM_STORE`` or
    ``./abllm-data/events.duckdb``) through an in-process pipeline that spools to ``spool_dir``
    while the store is down. A file config reads the runtime state (kill switch, stage, paused
    arms, winner) where ``abllm serve`` keeps it: ``state`` is a state URL or a ``StateReader``
    (``abllm.state.StateView``); without it, the state beside ``store`` (``ABLLM_STATE``, else
    ``abllm.state.state_url_for``), followed live (paused for all while it is unreachable:
    :mod:`abllm.client.owned_state`). ``api_key`` is sent as ``Authorization: Bearer``.
    ``assigner`` replaces the pure ``assign``: ``StickyAssigner(open_sticky(url))`` over the
    server's sticky store keeps units on the variant the gateway gave them while weights move.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | ExperimentFile | None = None,
        *,
        server_url: str | None = None,
        store: str | None = None,
        api_key: str | None = None,
        refresh_s: float = 30.0,
        spool_dir: str | os.PathLike[str] | None = None,
        state: StateReader | str | None = None,
        assigner: Assigner | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        self.settings = settings or ClientSettings()
        self._assigner = assigner
        file = _load(config)
        headers = {"User-Agent": "abllm-python"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.server_url = check_base_url(server_url) if server_url else None
        self._source: ConfigSync | StaticSource
        self._owned_state: OwnedState | None = None
        if self.server_url is not None:
            if refresh_s <= 0:
                raise ValidationError(f"refresh_s: must be > 0 seconds, got {refresh_s}")
            self._source = ConfigSync(
                self.server_url,
                headers=headers,
                refresh_s=refresh_s,
                timeout_s=self.settings.timeout_s,
                fallback=file,
            ).start()
        elif file is not None:
            if state is None or isinstance(state, str):
                self._owned_state = OwnedState(state, store)
                state = self._owned_state
            self._source = StaticSource(file, state)
        else:
            raise ValidationError(
                "config: Client needs config= (a YAML path or an ExperimentFile) or server_url="
            )
        try:
            self._sink = self._open_sink(store, spool_dir, headers)
        except BaseException:
            self._source.close()
            if self._owned_state is not None:
                self._owned_state.close()
            raise
        self._served: OrderedDict[tuple[str, int, str], Served] = OrderedDict()
        self._traces: OrderedDict[str, Served] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._exit_hook = _exit_hook(self)
        atexit.register(self._exit_hook)

    def _open_sink(
        self, store: str | None, spool_dir: str | os.PathLike[str] | None, headers: dict[str, str]
    ) -> Sink:
        if self.server_url is not None and store is None:
            s = self.settings
            sender = SenderSettings(
                batch_size=s.batch_size,
                flush_interval_s=s.flush_interval_s,
                max_buffer=s.max_buffer,
                timeout_s=s.timeout_s,
                max_backoff_s=s.max_backoff_s,
            )
            return HttpSender(self.server_url, headers, sender)
        opened = open_store(store)
        try:
            return LocalSink(opened, Path(spool_dir or DEFAULT_CLIENT_SPOOL))
        except BaseException:
            opened.close()
            raise

    # -- configuration ------------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        """The experiments and runtime state assignments use right now."""
        return self._source.snapshot

    def experiment(self, experiment_id: str) -> Experiment:
        """The experiment with this id or alias (``NotFound`` otherwise)."""
        return self._source.snapshot.experiment(experiment_id)

    def refresh(self) -> bool:
        """Fetch the config and state from the server now; False when it failed (kept the old)."""
        return self._source.refresh()

    # -- assignment ---------------------------------------------------------------------------
    def assign(
        self, experiment_id: str, unit_id: str, attributes: Mapping[str, Any] | None = None
    ) -> Assignment:
        """The unit's variant, computed locally with ``abllm.assign.assign`` and the synced state.

        The unit's first assignment in this process is recorded as an ``exposure`` event (a unit
        in the holdback gets one with no variant, for the holdback report).
        """
        snap = self._source.snapshot
        exp = snap.experiment(experiment_id)
        return self._serve(snap, exp, unit_id, attributes, None)

    def _assign(
        self, snap: Snapshot, exp: Experiment, unit_id: str, attributes: Mapping[str, Any] | None
    ) -> Assignment:
        state = snap.state(exp.id)
        if self._assigner is None:
            return assign(exp, unit_id, attributes, None, state)
        return self._assigner.assign(exp, unit_id, attributes, None, state)

    def _serve(
        self,
        snap: Snapshot,
        exp: Experiment,
        unit_id: str,
        attributes: Mapping[str, Any] | None,
        trace_id: str | None,
    ) -> Assignment:
        """Assign; remember what the unit got; emit its exposure the first time."""
        a = self._assign(snap, exp, unit_id, attributes)
        served = Served(exp.id, exp.version, a.variant_id, counted(a))
        key = (exp.id, exp.version, unit_id)
        with self._lock:
            first = key not in self._served
            self._served[key] = served
            self._served.move_to_end(key)
            while len(self._served) > self.settings.exposure_cache_size:
                self._served.popitem(last=False)
            if trace_id is not None:
                self._traces[trace_id] = served
                while len(self._traces) > self.settings.exposure_cache_size:
                    self._traces.popitem(last=False)
        if first and served.counted:
            # The gateway's builder (loaded on first use: ``import abllm`` stays light).
            from abllm.gateway.measure import exposure_event

            trace = trace_id or os.urandom(16).hex()
            self.emit(
                exposure_event(
                    exp, a.variant_id, unit_id, trace, str(a.reason), a.weights, a.probability
                )
            )
        return a

    # -- events -------------------------------------------------------------------------------
    def track(
        self,
        experiment_id: str,
        unit_id: str,
        *,
        type: Literal["feedback", "outcome"] = "feedback",
        trace_id: str | None = None,
        **metrics: float | bool | str | None,
    ) -> Event | None:
        """Record feedback or an outcome for the unit's variant, e.g. ``rating=5``.

        Numbers and booleans are metrics; strings are attributes (redacted). The variant is the
        one this process served the unit (or the ``trace_id`` call), else the unit's current
        assignment. Returns the event, or None when the unit is outside the experiment's
        analysis (out of traffic, not targeted, killed ...), as the server's feedback route does.
        """
        if type not in ("feedback", "outcome"):
            raise ValidationError(f"type: must be 'feedback' or 'outcome', got {type!r}")
        exp = self._source.snapshot.experiment(experiment_id)
        served = self._served_for(exp, unit_id, trace_id)
        if not served.counted:
            return None
        values: dict[str, float | bool | None] = {}
        attrs: dict[str, str] = {}
        for key, value in metrics.items():
            if isinstance(value, str):
                attrs[key] = redact(value)[:2000]
            elif value is None or isinstance(value, bool | int | float):
                values[key] = value
            else:
                raise ValidationError(f"{key}: must be a number, a boolean or a string")
        if not values:
            raise ValidationError(
                "track needs at least one metric, e.g. rating=5 or converted=True"
            )
        event = parse_event(
            {
                "type": type,
                "experiment_id": served.experiment_id,
                "experiment_version": served.experiment_version,
                "variant_id": served.variant_id,
                "unit_id": pseudonymous_id(unit_id),
                "trace_id": trace_id,
                "metrics": values,
                "attrs": attrs,
            }
        )
        self.emit(event)
        return event

    def _served_for(self, exp: Experiment, unit_id: str, trace_id: str | None) -> Served:
        with self._lock:
            by_trace = self._traces.get(trace_id) if trace_id else None
            if by_trace is not None and by_trace.experiment_id == exp.id:
                return by_trace
            known = self._served.get((exp.id, exp.version, unit_id))
        if known is not None:
            return known
        a = self._assign(self._source.snapshot, exp, unit_id, None)
        return Served(exp.id, exp.version, a.variant_id, counted(a))

    def emit(self, event: Event) -> None:
        """Send one prepared event (buffered; never raises into the caller)."""
        self._sink.emit(event)

    @property
    def store(self) -> EventStore | None:
        """The in-process event store (None when events go to a server), e.g. for ``analyze``."""
        return self._sink.store if isinstance(self._sink, LocalSink) else None

    @property
    def dropped_events(self) -> int:
        """Events dropped because the buffer was full (the server or store was away too long)."""
        return self._sink.dropped

    def wrap_openai(self, openai_client: Any) -> OpenAIWrapper:
        """An OpenAI client whose ``chat.completions.create`` runs the experiment.

        ``model`` names the experiment (id or alias) and ``user`` the unit; the call goes to
        ``openai_client`` with the assigned variant's model, prompt and parameters, and is
        measured (latency, TTFT, tokens, cost, errors). ``AsyncOpenAI`` clients work too.
        See :mod:`abllm.client.openai_wrap`.
        """
        from abllm.client.openai_wrap import wrap_openai

        return wrap_openai(self, openai_client)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once ``close()`` ran: events can no longer be delivered."""
        return self._closed

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Deliver every event recorded so far; False when ``timeout`` ran out first."""
        return self._sink.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is buffered (up to ``timeout``), stop the background threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._exit_hook)
        try:
            self._sink.close(self.settings.close_timeout_s if timeout is None else timeout)
        finally:
            self._source.close()
            if self._owned_state is not None:
                self._owned_state.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load(config: str | os.PathLike[str] | ExperimentFile | None) -> ExperimentFile | None:
    if config is None or isinstance(config, ExperimentFile):
        return config
    if isinstance(config, str | os.PathLike):
        return load_experiments(Path(config))
    raise ValidationError(
        f"config: must be a YAML path or an ExperimentFile, got {type(config).__name__}"
    )


def _exit_hook(client: Client) -> Any:
    """An atexit callback that closes ``client`` if it is still alive (a weak reference: the
    hook must not keep a dropped client, its threads and its buffer alive)."""
    ref = weakref.ref(client)

    def hook() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    return hook
