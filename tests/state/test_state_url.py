"""The state file lives beside the event store for every URL form (one parser for both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from abllm.events import open_store
from abllm.state import open_state, state_url_for
from abllm.storeurl import file_url, parse_url


@pytest.mark.parametrize(
    ("store", "events", "state"),
    [
        (
            "duckdb:///./abllm-data/events.duckdb",
            "abllm-data/events.duckdb",
            "abllm-data/events.state.sqlite",
        ),
        ("./x/events.duckdb", "x/events.duckdb", "x/events.state.sqlite"),
        ("x/events.duckdb", "x/events.duckdb", "x/events.state.sqlite"),
        ("x", "x", "x.state.sqlite"),
    ],
)
def test_relative_store_keeps_state_beside_it(
    store: str, events: str, state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--store duckdb:///./abllm-data/events.duckdb`` once wrote ``/abllm-data/...``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLLM_STATE", raising=False)
    open_store(store).close()
    backend = open_state(store_url=store)
    backend.close()
    assert (tmp_path / events).is_file()
    assert (tmp_path / state).is_file()
    assert backend.url == file_url("sqlite", state)


@pytest.mark.parametrize("form", ["duckdb://{p}", "{p}"])
def test_absolute_store_keeps_state_beside_it(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ABLLM_STATE", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "abs" / "x.duckdb"
    store = form.format(p=path)
    open_store(store).close()
    open_state(store_url=store).close()
    assert path.is_file()
    assert (tmp_path / "abs" / "x.state.sqlite").is_file()
    assert state_url_for(store) == f"sqlite://{tmp_path}/abs/x.state.sqlite"


@pytest.mark.parametrize("store", ["duckdb:///:memory:", "duckdb://", "chdb://", ":memory:"])
def test_memory_store_keeps_state_in_memory(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABLLM_STATE", raising=False)
    assert state_url_for(store) == "memory://"
    backend = open_state(store_url=store)
    assert backend.url == "memory://"
    backend.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///./rel/a.duckdb", "rel/a.duckdb"),
        ("sqlite:///../up/s.sqlite", "../up/s.sqlite"),
        ("sqlite:///abs/s.sqlite", "/abs/s.sqlite"),
        ("rel/s.sqlite", "rel/s.sqlite"),
        ("/abs/s.sqlite", "/abs/s.sqlite"),
        ("chdb:///:memory:", ":memory:"),
    ],
)
def test_parse_and_format_round_trip(url: str, path: str) -> None:
    parsed = parse_url(url, "sqlite")
    assert parsed.path == path
    assert parse_url(file_url(parsed.scheme, path), "sqlite").path == path


def test_state_url_given_bare_relative_path_stays_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_state("rel/state.sqlite").close()
    assert (tmp_path / "rel" / "state.sqlite").is_file()


def test_server_urls_are_not_paths() -> None:
    assert parse_url("postgresql://u@h/db", "duckdb").path is None
    assert state_url_for("postgresql://u@h/db") == "postgresql://u@h/db"
