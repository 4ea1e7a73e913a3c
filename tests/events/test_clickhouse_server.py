"""The clickhouse-connect store's SQL, run on chdb through a stand-in client (no HTTP server here).

Debian's clickhouse-server on this machine is 18.16, which current clients cannot talk to, so
``ClickHouseServerStore`` is exercised with a fake ``get_client`` whose ``command``, ``query``
and ``insert`` go to the in-process engine. This covers the store's statements and value
shapes; the HTTP transport itself is clickhouse-connect's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abllm.events import Event, open_store
from abllm.events import clickhouse as ch


class _Result:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.result_rows = rows


class ChdbBackedClient:
    """Just the clickhouse-connect client methods the store calls."""

    def __init__(self, path: str) -> None:
        self.engine = ch.ChdbStore.__new__(ch.ChdbStore)
        import chdb

        self.engine._conn = chdb.connect(path)
        self.engine._lock = threading.RLock()
        self.inserts: list[int] = []
        self.url_parts: dict[str, Any] = {}

    def command(self, sql: str) -> None:
        self.engine._command(sql)

    def query(self, sql: str) -> _Result:
        return _Result(self.engine._rows(sql))

    def insert(
        self, table: str, data: list[list[Any]], column_names: list[str], column_oriented: bool
    ) -> None:
        import pyarrow as pa

        assert column_oriented and table == ch.TABLE
        arrays = {name: list(col) for name, col in zip(column_names, data, strict=True)}
        arrays["event_id"] = [u.hex for u in arrays["event_id"]]  # the client sends UUIDs
        self.inserts.append(len(arrays["event_id"]))
        self.engine._insert(pa.table(arrays))

    def close(self) -> None:
        self.engine._conn.close()


@pytest.fixture
def server_store(
    chdb_available: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, ChdbBackedClient]]:
    client = ChdbBackedClient(str(tmp_path / "ch"))
    seen: dict[str, Any] = {}

    class Driver:
        @staticmethod
        def get_client(**kwargs: Any) -> ChdbBackedClient:
            seen.update(kwargs)
            return client

    monkeypatch.setattr(ch, "_clickhouse_connect", lambda: Driver)
    store = open_store("clickhouse://alice:secret@ch.example:8443/analytics")
    client.url_parts = seen
    yield store, client
    store.close()


@pytest.mark.clickhouse
def test_server_store_dedups_and_reads_final(server_store: tuple[Any, ChdbBackedClient]) -> None:
    store, client = server_store
    assert client.url_parts == {
        "host": "ch.example",
        "port": 8443,
        "username": "alice",
        "password": "secret",
        "database": "analytics",
        "secure": False,
    }
    events = [
        Event(type="llm_call", experiment_id="e", unit_id=f"u{i}", metrics={"latency_ms": i})
        for i in range(100)
    ]
    assert store.append(events) == 100
    assert store.append(events[:50] + events[:50]) == 0
    assert client.inserts == [100]  # the second batch was entirely known: nothing sent
    assert store.count() == 100 and store.count("e") == 100
    p95 = store.query(
        f"SELECT quantileExact(0.95)(latency_ms) FROM {store.events_relation} WHERE type = ?",
        ["llm_call"],
    )
    assert p95 == [(95.0,)]
    assert store.schema_version == 1


@pytest.mark.clickhouse
def test_server_store_opens_while_clickhouse_is_down(
    chdb_available: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``abllm serve`` opens with ``defer_connect``: it starts during an outage and recovers."""
    from abllm.errors import StoreUnavailable

    client = ChdbBackedClient(str(tmp_path / "ch"))
    up = {"now": False}

    class Driver:
        @staticmethod
        def get_client(**kwargs: Any) -> ChdbBackedClient:
            if not up["now"]:
                raise ConnectionRefusedError("connection refused")
            return client

    monkeypatch.setattr(ch, "_clickhouse_connect", lambda: Driver)
    with pytest.raises(StoreUnavailable):
        open_store("clickhouse://ch.example:8123/db")  # without defer_connect: refused at once
    store = open_store("clickhouse://ch.example:8123/db", defer_connect=True)
    try:
        event = Event(type="exposure", experiment_id="e", unit_id="u1", variant_id="control")
        with pytest.raises(StoreUnavailable):  # the pipeline spools on this
            store.append([event])
        up["now"] = True
        assert store.append([event]) == 1  # connects and migrates on first use
        assert store.count("e") == 1 and store.schema_version == 1
    finally:
        store.close()
