"""One object per state store for each table added beside the state (leases, managed keys).

Each extension has an implementation per backend (SQLite, PostgreSQL, Redis); this picks the
one for a store's backend and keeps it for as long as the store lives, so its tables or scripts
are set up once per store object.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from abllm.errors import ValidationError

if TYPE_CHECKING:
    from abllm.state.base import StateStore

T = TypeVar("T")


def for_backend(
    store: StateStore,
    opened: weakref.WeakKeyDictionary[Any, T],
    makers: Mapping[str, Callable[[Any], T]],
    missing: str,
) -> T:
    """``makers[backend](store)``, made once per store; ``missing`` names what a backend lacks.

    ``makers`` is keyed by ``embedded`` (the SQLite file, in memory too), ``postgres`` and
    ``redis``; any other backend is a ``ValidationError`` "the <kind> state backend <missing>".
    """
    found = opened.get(store)
    if found is None:
        from abllm.state.embedded import EmbeddedStateStore

        kind = "embedded" if isinstance(store, EmbeddedStateStore) else store.kind
        make = makers.get(kind)
        if make is None:
            raise ValidationError(f"the {store.kind} state backend {missing}")
        found = opened[store] = make(store)
    return found
