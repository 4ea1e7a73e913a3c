"""Starting a serving process's state view, also while the state backend is down.

``abllm serve`` must not refuse to start because Redis or PostgreSQL is unreachable: it
registers its experiments when it can, serves from the cache file of the last state it
applied (or control for everyone when there is none), and registers and re-adopts when the
backend answers again (:class:`~abllm.state.view.StateView`'s ``on_connect``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from abllm.errors import StoreUnavailable
from abllm.state.base import StateStore
from abllm.state.view import StateView

log = logging.getLogger("abllm.state")

#: The cache file's name inside the spool directory.
CACHE_NAME = "state-cache.json"


def start_view(
    store: StateStore,
    register: Callable[[StateStore], object],
    *,
    cache_path: str | Path | None,
    name: str = "abllm serve",
) -> StateView:
    """Register (a Conflict still stops the start), then start the view.

    When the backend is unreachable the view starts from ``cache_path`` and calls
    ``register`` again once the backend answers, and after every reset it detects.
    """
    try:
        register(store)
    except StoreUnavailable as exc:
        log.warning(
            "state store unreachable at start (%s): serving the last cached state, or control "
            "where none is cached, until it answers",
            exc.message,
        )
    return StateView(store, cache_path=cache_path, on_connect=register, name=name).start()
