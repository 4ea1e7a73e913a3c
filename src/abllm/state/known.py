"""Which experiment ids a state store knows: those registered with a definition.

``abllm serve`` registers every experiment of its config at start (so does the controller, and
a CLI command given ``--config FILE``). A kill, resume or rollout move for any other id is a
typo or the wrong store: it is refused before anything is written, naming the known ids, so
``abllm kill exp_sumarize_v2`` cannot report "killed" for an experiment nobody serves.
"""

from __future__ import annotations

import difflib
import time

from abllm.errors import NotFound
from abllm.state.base import StateStore
from abllm.state.models import ExperimentState


def known_ids(store: StateStore) -> list[str]:
    """Ids registered in ``store`` (a state row with a definition), sorted."""
    return sorted(eid for eid, s in store.snapshot().items() if s.definition is not None)


def unknown_experiment(experiment_id: str, known: list[str]) -> NotFound:
    """The error for an id nobody registered: names the known ids and the closest one."""
    listed = ", ".join(known) if known else "none"
    close = difflib.get_close_matches(experiment_id, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = (
        ""
        if known
        else " (start `abllm serve` with its config, or pass --config FILE to register it)"
    )
    return NotFound(
        f"unknown experiment {experiment_id!r}: not registered in the state store{where} "
        f"(known: {listed}){hint}"
    )


def require_known(store: StateStore, experiment_id: str) -> ExperimentState:
    """The registered state of ``experiment_id``, or NotFound naming the known ids."""
    state = store.get(experiment_id)
    if state is not None and state.definition is not None:
        return state
    raise unknown_experiment(experiment_id, known_ids(store))


def wait_known(store: StateStore, experiment_id: str, timeout_s: float) -> ExperimentState:
    """Like :func:`require_known`, but a store with no experiments at all is given up to
    ``timeout_s`` seconds: after a reset, the serving processes write back what they applied
    within a second or two (see :class:`~abllm.state.view.StateView`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return require_known(store, experiment_id)
        except NotFound:
            if known_ids(store) or time.monotonic() >= deadline:
                raise
        time.sleep(0.1)
