"""Runtime state for a serving process, in one call (what ``abllm serve`` needs).

::

    runtime = open_serving_state(config, store_url=store, state_url=state)  # Conflict if a
    app = create_app(config, events, state=runtime.view)                    # live experiment's
    app.include_router(build_admin_router(runtime.store))                   # variants changed
    runtime.start_controller(events)   # guardrails, stages and bandits, under a lease
    ...
    runtime.close()

Registering refuses (``abllm.errors.Conflict``) a config whose running experiment changed its
variants without a version bump, before any request is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from abllm.config import ExperimentFile
from abllm.rollout.actions import register_experiments
from abllm.rollout.alerts import AlertHook, LogAlert
from abllm.rollout.controller import RolloutController
from abllm.rollout.live import AnalysisResults
from abllm.rollout.loop import ControllerLoop
from abllm.state import StateStore, StateView, open_state
from abllm.state.lease import leases_for
from abllm.state.startup import start_view

if TYPE_CHECKING:
    from abllm.events import EventStore


@dataclass
class ServingState:
    """The state backend, this process's view of it and, optionally, the controller."""

    config: ExperimentFile
    store: StateStore
    view: StateView
    controller: ControllerLoop | None = field(default=None)

    def start_controller(
        self,
        events: EventStore,
        hooks: Sequence[AlertHook] | None = None,
        *,
        actor: str = "controller",
    ) -> ControllerLoop:
        """Run the rollout controller in a background thread of this process.

        Every process may start one: the lease in the state backend lets exactly one act per
        experiment at a time, and moves to another process when the holder stops renewing.
        """
        self.controller = start_controller(
            self.store, self.config, events, hooks=hooks, actor=actor
        )
        return self.controller

    def close(self) -> None:
        """Stop the controller and the view, then close the backend."""
        if self.controller is not None:
            self.controller.close()
        self.view.close()
        self.store.close()


def start_controller(
    store: StateStore,
    config: ExperimentFile,
    events: EventStore,
    *,
    hooks: Sequence[AlertHook] | None = None,
    actor: str = "controller",
) -> ControllerLoop:
    """The rollout controller of a serving process, under the state backend's leases."""
    controller = RolloutController(
        store,
        config.experiments,
        AnalysisResults(events),
        hooks=list(hooks) if hooks is not None else [LogAlert()],
        leases=leases_for(store),
        actor=actor,
    )
    return ControllerLoop(controller).start()


def open_serving_state(
    config: ExperimentFile,
    *,
    store_url: str | None = None,
    state_url: str | None = None,
    actor: str = "serve",
    cache_path: str | Path | None = None,
) -> ServingState:
    """Open the backend, register every experiment (Conflict on changed live variants) and
    start the in-memory view the gateway reads on every request.

    ``cache_path`` keeps a copy of the last state seen, so a restart while the backend is
    unreachable still honours a kill.
    """
    store = open_state(state_url, store_url=store_url)
    try:
        view = start_view(
            store,
            lambda s: register_experiments(s, config.experiments, actor=actor),
            cache_path=cache_path,
            name=actor,
        )
    except BaseException:
        store.close()
        raise
    return ServingState(config=config, store=store, view=view)
