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


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def state_url(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[str]:
    """A state URL for each backend."""
    kind = request.param
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/state.sqlite"
    elif kind == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        yield f"{pg_url}?schema={unique_name}"
        drop_pg_schema(pg_url, unique_name)
    else:
        redis_url = request.getfixturevalue("redis_url")
        yield f"{redis_url}?prefix={unique_name}:"
        drop_redis_prefix(redis_url, f"{unique_name}:")


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    s = open_state(state_url)
    yield s
    s.close()
