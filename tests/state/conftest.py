"""A state store per backend: embedded (memory and file), PostgreSQL and Redis.

Each server-backed store gets its own schema or key prefix, removed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from abllm.state import StateStore, open_state


def drop_pg_schema(pg_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


_SERVERS = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[str]:
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/state.sqlite"
    elif kind == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        yield f"{pg_url}?schema={name}"
        drop_pg_schema(pg_url, name)
    else:
        redis_url = request.getfixturevalue("redis_url")
        yield f"{redis_url}?prefix={name}:"
        drop_redis_prefix(redis_url, f"{name}:")


@pytest.fixture(params=["memory", "sqlite", *_SERVERS])
def state_url(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[str]:
    """A state URL for each backend."""
    yield from _url(request.param, request, tmp_path, unique_name)


@pytest.fixture(params=["sqlite", *_SERVERS])
def reset_url(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[str]:
    """A state URL for each backend that can be reset from outside (all but memory://)."""
    yield from _url(request.param, request, tmp_path, unique_name)


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    s = open_state(state_url)
    yield s
    s.close()
