"""Store fixtures: the same tests run on DuckDB, a real PostgreSQL and ClickHouse (chdb)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from abllm.events import EventStore, open_store

BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("chdb", id="chdb", marks=pytest.mark.clickhouse),
]


def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, isolated store URL for ``backend``."""
    if backend == "duckdb":
        return f"duckdb://{tmp_path}/events.duckdb"
    if backend == "postgres":
        pg_url: str = request.getfixturevalue("pg_url")
        schema: str = request.getfixturevalue("unique_name")
        return f"{pg_url}?schema={schema}"
    request.getfixturevalue("chdb_available")
    return f"chdb://{tmp_path}/chdb"


def drop_store(backend: str, url: str) -> None:
    """Remove what a test created on a shared server."""
    if backend == "postgres":
        store = open_store(url)
        try:
            schema = url.rsplit("schema=", 1)[1]
            store.query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            store.close()


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend, url) for a fresh store; cleaned up afterwards."""
    backend: str = request.param
    url = store_url(backend, request, tmp_path)
    yield backend, url
    drop_store(backend, url)


@pytest.fixture
def store(backend_url: tuple[str, str]) -> Iterator[EventStore]:
    """An open, empty store on each backend."""
    s = open_store(backend_url[1])
    yield s
    s.close()
