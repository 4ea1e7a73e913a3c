"""``open_store``: one URL picks the backend; backend-specific guarantees."""

from __future__ import annotations

import builtins
import threading
from pathlib import Path
from typing import Any

import pytest

from abllm.errors import ValidationError
from abllm.events import DEFAULT_STORE_URL, Event, open_store
from abllm.events.schema import to_arrow
from abllm.events.store import _path_of, resolve_store_url


def test_url_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABLLM_STORE", raising=False)
    assert resolve_store_url(None) == DEFAULT_STORE_URL == "duckdb:///./abllm-data/events.duckdb"
    monkeypatch.setenv("ABLLM_STORE", "duckdb:///:memory:")
    assert resolve_store_url(None) == "duckdb:///:memory:"
    assert resolve_store_url("postgresql://x/y") == "postgresql://x/y"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///./abllm-data/events.duckdb", "abllm-data/events.duckdb"),
        ("duckdb:///tmp/x.duckdb", "/tmp/x.duckdb"),
        ("duckdb:///:memory:", ":memory:"),
        ("duckdb://", ":memory:"),
    ],
)
def test_duckdb_paths(url: str, path: str) -> None:
    assert _path_of(url, "duckdb") == path


def test_default_store_is_a_file_under_abllm_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLLM_STORE", raising=False)
    store = open_store(None)
    store.append([Event(type="exposure", experiment_id="e", unit_id="u")])
    store.close()
    assert (tmp_path / "abllm-data" / "events.duckdb").is_file()
    bare = open_store(str(tmp_path / "abllm-data" / "events.duckdb"))  # a bare path works too
    assert bare.dialect == "duckdb" and bare.count() == 1
    bare.close()


def test_unknown_scheme() -> None:
    with pytest.raises(ValidationError, match="unknown store URL scheme 'mysql'"):
        open_store("mysql://localhost/x")


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_psycopg(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "psycopg":
            raise ImportError("no psycopg")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(ValidationError, match=r"pip install 'abllm\[postgres\]'"):
        open_store("postgresql://127.0.0.1:1/x")


@pytest.mark.clickhouse
def test_clickhouse_reads_are_deduplicated_before_merges(
    chdb_available: None, tmp_path: Path
) -> None:
    store = open_store(f"chdb://{tmp_path}/ch")
    try:
        events = [Event(type="exposure", experiment_id="e", unit_id=f"u{i}") for i in range(10)]
        store.append(events)
        # A second writer that skipped the lookup: the duplicates sit in their own part.
        store._insert(to_arrow(events))  # type: ignore[attr-defined]
        assert store.query("SELECT count() FROM abllm_events")[0][0] == 20  # raw table
        assert store.count() == 10  # events_relation reads through FINAL
        rel = store.events_relation
        assert store.query(f"SELECT count(), uniqExact(event_id) FROM {rel}")[0] == (10, 10)
        store.optimize()  # type: ignore[attr-defined]
        assert store.query("SELECT count() FROM abllm_events")[0][0] == 10
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_concurrent_writers_never_duplicate(pg_url: str, unique_name: str) -> None:
    url = f"{pg_url}?schema={unique_name}"
    stores = [open_store(url) for _ in range(3)]
    events = [Event(type="exposure", experiment_id="e", unit_id=f"u{i}") for i in range(3000)]
    added: list[int] = []
    try:
        threads = [
            threading.Thread(target=lambda s=s: added.append(s.append(events))) for s in stores
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(added) == [0, 0, 3000] or sum(added) == 3000
        total, distinct = stores[0].query(
            "SELECT count(*), count(DISTINCT event_id) FROM abllm_events"
        )[0]
        assert total == distinct == 3000
        assert stores[0].schema_version == 1  # type: ignore[attr-defined]
    finally:
        stores[0].query(f'DROP SCHEMA "{unique_name}" CASCADE')
        for s in stores:
            s.close()
