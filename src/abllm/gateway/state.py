"""Where the gateway reads an experiment's runtime state (kill switch, paused arms, stage).

The rollout package plugs its backends (memory, Redis, SQL with NOTIFY) in behind
:class:`StateReader` (``abllm.state.StateView`` is one); the gateway calls ``get`` once per
request, so an implementation must answer from memory (a cache refreshed by pub/sub), never
with a network round trip.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from abllm.assign import RuntimeState

_DEFAULT = RuntimeState()


@runtime_checkable
class StateReader(Protocol):
    """Read side of the runtime state store, as the gateway sees it."""

    def get(self, experiment_id: str) -> RuntimeState:
        """The current state of ``experiment_id`` (``RuntimeState()`` when none is stored)."""
        ...


class InMemoryStateView:
    """A dict of states; the default, and what tests use to flip a kill switch.

    >>> view = InMemoryStateView()
    >>> view.set("exp", RuntimeState(killed=True))
    >>> view.get("exp").killed, view.get("other").killed
    (True, False)
    """

    def __init__(self) -> None:
        self._states: dict[str, RuntimeState] = {}

    def get(self, experiment_id: str) -> RuntimeState:
        """The stored state, or the default one."""
        return self._states.get(experiment_id, _DEFAULT)

    def set(self, experiment_id: str, state: RuntimeState) -> None:
        """Replace the state of one experiment."""
        self._states[experiment_id] = state
