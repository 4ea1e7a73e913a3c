"""Shared fixtures: real PostgreSQL and Redis servers for tests marked ``postgres``/``redis``.

``pg_url`` and ``redis_url`` give the server's URL when it answers; otherwise the test is
skipped with the reason — except under ``CI=true``, where a missing server fails the test (CI
must run everything). Tests add their own unique schema or key prefix (``unique_name``) so
that several test runs can share one server at the same time.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

PG_URL = os.environ.get("ABLLM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ABLLM_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def _missing(what: str, url: str, env: str) -> None:
    message = f"{what} not reachable at {url} (set {env} to point at one)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL (skip, or fail under CI=true, when it is absent)."""
    if not _reachable(PG_URL, 5432):
        _missing("PostgreSQL", PG_URL, "ABLLM_TEST_PG")
    return PG_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis (skip, or fail under CI=true, when it is absent)."""
    if not _reachable(REDIS_URL, 6379):
        _missing("Redis", REDIS_URL, "ABLLM_TEST_REDIS")
    return REDIS_URL


@pytest.fixture
def unique_name() -> str:
    """A fresh identifier for a schema, database or key prefix (letters, digits, _)."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def chdb_available() -> None:
    """Skip (or fail under CI=true) when chdb, ClickHouse's in-process engine, is absent."""
    try:
        import chdb  # noqa: F401
    except ImportError:
        message = "chdb is not installed (pip install 'abllm[clickhouse]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
