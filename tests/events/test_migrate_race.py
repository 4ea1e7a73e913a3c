"""Four processes open the same fresh PostgreSQL schema at the same instant: all come up.

Each child opens what ``abllm serve`` opens (event store, state store, sticky store, leases,
its heartbeat) after sleeping until one shared start time, so their ``CREATE ... IF NOT EXISTS``
statements meet. Without one DDL lock per schema, one of them failed with ``UniqueViolation``
on ``pg_type_typname_nsp_index`` (``abllm_sticky``) or on ``pg_namespace``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

CHILD = """
import sys, time
from abllm.events import open_store
from abllm.state import open_state
from abllm.state.lease import leases_for
from abllm.state.sticky import open_sticky

url, start_at, holder = sys.argv[1], float(sys.argv[2]), sys.argv[3]
time.sleep(max(0.0, start_at - time.time()))
store = open_store(url)
state = open_state(None, store_url=url)
sticky = open_sticky(None, store_url=url)
sticky.put_many("exp", 1, {"u1": "a"})
leases_for(state).acquire("controller:exp", holder, 5.0)
state.get("exp")
print("up", store.count(), flush=True)
"""

PROCESSES = 4


def _start_together(url: str) -> list[subprocess.Popen[str]]:
    start_at = time.time() + 4.0  # after every interpreter has imported abllm
    return [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(start_at), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]


def test_four_processes_on_a_fresh_schema_all_come_up(pg_url: str, unique_name: str) -> None:
    import psycopg

    url = f"{pg_url}?schema={unique_name}"
    try:
        procs = _start_together(url)
        results = [p.communicate(timeout=60) for p in procs]
        failures = [err for p, (_, err) in zip(procs, results, strict=True) if p.returncode]
        assert failures == []
        assert [out.strip() for out, _ in results] == ["up 0"] * PROCESSES
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')


@pytest.mark.clickhouse
def test_clickhouse_migrations_are_idempotent(chdb_available: None, tmp_path: Path) -> None:
    # ClickHouse has no advisory lock: processes starting together each run every statement,
    # so every statement must be safe to repeat, and a repeated version row must not count twice.
    from abllm.events import open_store
    from abllm.events.clickhouse import MIGRATIONS

    assert all("IF NOT EXISTS" in sql for _, statements in MIGRATIONS for sql in statements)
    store = open_store(f"chdb://{tmp_path}/chdb")
    try:
        store._migrate()  # type: ignore[attr-defined]  # what a second process does meanwhile
        store._command(  # type: ignore[attr-defined]  # its version row landing as well
            "INSERT INTO abllm_schema_version (version) VALUES (1)"
        )
        assert store.schema_version == 1  # type: ignore[attr-defined]
        assert store.count() == 0
    finally:
        store.close()
