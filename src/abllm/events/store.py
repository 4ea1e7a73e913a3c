"""The ``EventStore`` Protocol and ``open_store``, which picks a backend from one URL.

Backends live in their own modules (``embedded``, ``postgres``, ``clickhouse``) and import their
driver lazily, so ``import abllm.events`` works without the optional extras installed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from abllm.errors import ValidationError
from abllm.events.models import Event
from abllm.storeurl import MEMORY, parse_url

DEFAULT_STORE_URL = "duckdb:///./abllm-data/events.duckdb"
STORE_ENV = "ABLLM_STORE"


@runtime_checkable
class EventStore(Protocol):
    """Where events live. Every backend has the same ``abllm_events`` table.

    ``events_relation`` is the SQL to select deduplicated rows from (``abllm_events`` on DuckDB
    and PostgreSQL, where ``event_id`` is unique; a ``FINAL`` subquery on ClickHouse, whose
    ReplacingMergeTree removes duplicates only when parts merge)::

        store = open_store("duckdb:///:memory:")
        store.append([Event(type="exposure", experiment_id="e", unit_id="u", variant_id="a")])
        store.query(f"SELECT count(*) FROM {store.events_relation} WHERE experiment_id = ?", ["e"])
    """

    dialect: str
    events_relation: str

    def append(self, events: Sequence[Event]) -> int:
        """Store ``events`` durably; ``event_id`` already stored is ignored. Returns rows added."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run read-only SQL in the engine with ``?`` placeholders; returns row tuples."""
        ...

    def count(self, experiment_id: str | None = None) -> int:
        """Number of distinct stored events, for one experiment or all."""
        ...

    def close(self) -> None:
        """Flush and release the connection; the store cannot be used afterwards."""
        ...


def missing_driver(package: str, extra: str) -> ValidationError:
    """The error raised when an optional driver is absent, with the command that installs it."""
    return ValidationError(
        f"the {package!r} package is needed for this store URL; "
        f"install it with: pip install 'abllm[{extra}]'"
    )


def resolve_store_url(url: str | None) -> str:
    """``url``, else env ``ABLLM_STORE``, else the embedded default file."""
    return url or os.environ.get(STORE_ENV) or DEFAULT_STORE_URL


def _path_of(url: str, scheme: str) -> str:
    """The file a ``scheme://`` URL names (see :mod:`abllm.storeurl`, the one parser)."""
    return parse_url(url, scheme).path or MEMORY


def open_store(url: str | None = None, *, defer_connect: bool = False) -> EventStore:
    """Open the store named by ``url`` (see the module docs for the URL forms).

    ``defer_connect=True`` opens a PostgreSQL or ClickHouse server store even while its server
    is down (it connects and creates its tables on first use), so a server can start during an
    outage and spool.

    - ``duckdb:///path/file.duckdb``, ``duckdb:///:memory:`` or a bare file path: embedded DuckDB
    - ``postgresql://user@host:port/db``: PostgreSQL (extra ``postgres``)
    - ``chdb:///path`` (or ``chdb://`` for in-memory): the ClickHouse engine in-process
    - ``clickhouse://user:password@host:8123/db``: a ClickHouse server (extra ``clickhouse``)
    """
    url = resolve_store_url(url)
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, url = "duckdb", parse_url(url, "duckdb").url
    if scheme == "duckdb":
        from abllm.events.embedded import DuckDBStore

        return DuckDBStore(_path_of(url, "duckdb"))
    if scheme in ("postgresql", "postgres"):
        from abllm.events.postgres import PostgresStore

        return PostgresStore(url, defer_connect=defer_connect)
    if scheme == "chdb":
        from abllm.events.clickhouse import ChdbStore

        return ChdbStore(_path_of(url, "chdb"))
    if scheme in ("clickhouse", "clickhouses"):
        from abllm.events.clickhouse import ClickHouseServerStore

        return ClickHouseServerStore(url, defer_connect=defer_connect)
    raise ValidationError(
        f"unknown store URL scheme {scheme!r}: use duckdb://, postgresql://, chdb:// or "
        "clickhouse://"
    )
