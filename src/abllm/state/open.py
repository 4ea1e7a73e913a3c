"""Pick a state backend from a URL; by default the state lives beside the event store.

``--state URL`` names the backend; without it the state lives in the ``--store`` URL's
database: the same PostgreSQL database, or for an embedded store a SQLite file next to the
DuckDB/chdb file (``events.duckdb`` -> ``events.state.sqlite``; see ``embedded.py`` for why
not the DuckDB file itself).
"""

from __future__ import annotations

import os
from pathlib import Path

from abllm.errors import ValidationError
from abllm.state.base import StateStore
from abllm.storeurl import file_url, parse_url

STATE_ENV = "ABLLM_STATE"
STORE_ENV = "ABLLM_STORE"
DEFAULT_STORE_URL = "duckdb:///./abllm-data/events.duckdb"


def _path_of(url: str) -> str:
    """The file a ``sqlite://`` (or bare-path) state URL names; see :mod:`abllm.storeurl`."""
    return parse_url(url, "sqlite").path or ""


def state_url_for(store_url: str | None = None, state_url: str | None = None) -> str:
    """The state URL to use given the ``--store`` and ``--state`` options (and env vars)."""
    state_url = state_url or os.environ.get(STATE_ENV)
    if state_url:
        return state_url
    store = store_url or os.environ.get(STORE_ENV) or DEFAULT_STORE_URL
    parsed = parse_url(store, "duckdb")
    scheme = parsed.scheme
    if scheme in ("postgresql", "postgres", "redis", "rediss", "sqlite", "memory"):
        return store
    if scheme in ("duckdb", "chdb"):
        if parsed.path is None or parsed.in_memory:
            return "memory://"
        return file_url("sqlite", Path(parsed.path).with_suffix(".state.sqlite"))
    raise ValidationError(
        f"runtime state cannot live in a {scheme}:// store (the kill switch needs a "
        "transactional store with notifications); pass --state postgresql://..., "
        "--state redis://... or --state sqlite:///path"
    )


def open_state(url: str | None = None, *, store_url: str | None = None) -> StateStore:
    """Open the state backend for ``url`` (or the one implied by ``store_url``).

    - ``sqlite:///path/state.sqlite`` or a bare path: embedded (one machine)
    - ``memory://``: in this process only (tests, demos)
    - ``postgresql://user@host/db?schema=NAME``: PostgreSQL, LISTEN/NOTIFY
    - ``redis://host:6379/0?prefix=abllm:``: Redis, pub/sub
    """
    url = state_url_for(store_url, url)
    scheme = parse_url(url, "sqlite").scheme
    if scheme == "memory":
        from abllm.state.embedded import EmbeddedStateStore

        return EmbeddedStateStore(":memory:")
    if scheme == "sqlite":
        from abllm.state.embedded import EmbeddedStateStore

        return EmbeddedStateStore(_path_of(url))
    if scheme in ("postgresql", "postgres"):
        from abllm.state.postgres import PostgresStateStore

        return PostgresStateStore(url)
    if scheme in ("redis", "rediss"):
        from abllm.state.redis import RedisStateStore

        return RedisStateStore(url)
    raise ValidationError(
        f"unknown state URL scheme {scheme!r}: use sqlite://, memory://, postgresql:// or redis://"
    )
