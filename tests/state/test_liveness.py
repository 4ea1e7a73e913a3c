"""Every backend: an epoch that a reset changes, heartbeats, restore, and views re-adopting."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from abllm.state import StateStore, StateView, open_state, replace
from abllm.state.confirm import confirm
from abllm.state.liveness import ProcessBeat

from .conftest import drop_pg_schema, drop_redis_prefix


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def bump(store: StateStore, times: int) -> None:
    for i in range(times):
        store.apply("exp", lambda s, i=i: replace(s, traffic=float(i + 1)), actor="ops")


def reset(state_url: str) -> None:
    """Lose everything, as a Redis restarted without persistence or a dropped schema would."""
    if state_url.startswith("sqlite:///"):
        path = state_url.removeprefix("sqlite://")
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    elif state_url.startswith("postgresql"):
        base, schema = state_url.split("?schema=")
        drop_pg_schema(base, schema)
    elif state_url.startswith("redis"):
        base, prefix = state_url.split("?prefix=")
        drop_redis_prefix(base, prefix)
    else:
        raise AssertionError(f"cannot reset {state_url}")


def test_epoch_is_created_once_and_shared(state_url: str) -> None:
    a = open_state(state_url)
    b = a if state_url == "memory://" else open_state(state_url)
    try:
        assert a.epoch() == a.epoch() == b.epoch()
        assert len(a.epoch()) == 16
    finally:
        a.close()
        if b is not a:
            b.close()


def test_reset_changes_the_epoch(reset_url: str) -> None:
    store = open_state(reset_url)
    before = store.epoch()
    reset(reset_url)
    fresh = open_state(reset_url)
    try:
        assert fresh.epoch() != before
        assert store.epoch() == fresh.epoch()  # the old handle sees the new store too
    finally:
        store.close()
        fresh.close()


def test_heartbeats_and_forget(store: StateStore) -> None:
    now = datetime.now(UTC)
    old = ProcessBeat(
        process_id="h:1:a", name="abllm serve", epoch="e", applied={}, connected=True,
        ts=now - timedelta(hours=2),
    )  # fmt: skip
    beat = ProcessBeat(
        process_id="h:2:b", name="abllm serve", epoch="e", applied={"exp": 3}, connected=True,
        ts=now,
    )  # fmt: skip
    store.heartbeat(old)
    store.heartbeat(beat)
    store.heartbeat(beat.model_copy(update={"applied": {"exp": 4}}))
    seen = store.processes()
    if store.kind in ("postgres", "redis"):  # aged on the server: both arrived just now
        store.forget("h:1:a")
        seen = store.processes()
    assert [b.process_id for b in seen] == ["h:2:b"]  # a beat over an hour old is dropped
    assert seen[0].applied == {"exp": 4}
    assert abs(seen[0].age_s()) < 5
    store.forget("h:2:b")
    assert store.processes() == []


def test_restore_only_fills_what_is_missing(store: StateStore) -> None:
    bump(store, 3)
    held = store.get("exp")
    assert held is not None
    assert not store.restore(held, actor="p", reason="r")  # a row exists: untouched
    other = replace(held, experiment_id="other", killed=True)
    assert store.restore(other, actor="p", reason="lost in a reset")
    got = store.get("other")
    assert got is not None and got.killed and got.version == 3
    assert [(a.action, a.reason) for a in store.audit("other")] == [("restore", "lost in a reset")]


def test_view_readopts_a_lower_version_after_a_reset(reset_url: str) -> None:
    """The regression: after a reset the view ignored every new state (version lower)."""
    writer = open_state(reset_url)
    bump(writer, 7)
    reader = open_state(reset_url)
    view = StateView(reader, poll_interval_s=0.05, healthy_poll_s=0.2).start()
    try:
        assert view.state("exp").version == 7  # type: ignore[union-attr]
        epoch = view.epoch
        reset(reset_url)
        # the old handle stays open to the end: closing a SQLite connection to a deleted file
        # checkpoints and unlinks "<path>-wal", which by then belongs to the new file
        old, writer = writer, open_state(reset_url)
        # whoever comes first: the view restoring v7, or this kill at v1 of the new store
        killed = writer.apply("exp", lambda s: replace(s, killed=True), actor="ops", action="kill")
        wait_for(lambda: view.get("exp").killed)
        wait_for(lambda: view.epoch != epoch)
        assert view.resets == 1
        assert view.state("exp").version == killed.version  # type: ignore[union-attr]
        result = confirm(writer, "exp", killed.version, timeout_s=5)
        assert result.complete and result.summary() == "applied by 1 of 1 live process"
    finally:
        view.close()
        writer.close()
        reader.close()
        old.close()


def test_view_writes_back_what_a_reset_lost(reset_url: str) -> None:
    writer = open_state(reset_url)
    writer.apply("exp", lambda s: replace(s, killed=True), actor="ops", action="kill")
    bump(writer, 2)
    reader = open_state(reset_url)
    view = StateView(reader, poll_interval_s=0.05, healthy_poll_s=0.2, name="test").start()
    try:
        reset(reset_url)
        # the old handle stays open to the end: closing a SQLite connection to a deleted file
        # checkpoints and unlinks "<path>-wal", which by then belongs to the new file
        old, writer = writer, open_state(reset_url)
        wait_for(lambda: writer.get("exp") is not None)
        back = writer.get("exp")
        assert back is not None and back.killed and back.version == 3
        entry = writer.audit("exp")[0]
        assert entry.action == "restore" and entry.actor.startswith("test ")
        assert view.get("exp").killed
    finally:
        view.close()
        writer.close()
        reader.close()
        old.close()


def test_view_follows_a_store_restored_from_an_older_copy(state_url: str) -> None:
    """Same epoch, lower version (an older backup): the store is the truth."""
    store = open_state(state_url)
    bump(store, 5)
    view = StateView(store, poll_interval_s=0.05, healthy_poll_s=0.1).start()
    try:
        older = replace(store.get("exp"), version=2, killed=True)  # type: ignore[arg-type]
        store._write(5, older, store.audit("exp")[0])  # type: ignore[attr-defined]
        wait_for(lambda: view.get("exp").killed)
        assert view.state("exp").version == 2  # type: ignore[union-attr]
    finally:
        view.close()
        store.close()


def test_confirm_counts_live_processes(store: StateStore) -> None:
    bump(store, 1)
    views = [StateView(store, name=f"p{i}", poll_interval_s=0.05).start() for i in range(3)]
    try:
        new = store.apply("exp", lambda s: replace(s, killed=True), actor="ops", action="kill")
        result = confirm(store, "exp", new.version, timeout_s=5)
        assert result.summary() == "applied by 3 of 3 live processes"
        assert result.complete and result.warnings() == []
        views[0].close()  # a clean stop removes its heartbeat
        lagging = ProcessBeat(
            process_id="h:9:z", name="abllm serve", epoch=store.epoch(), applied={"exp": 1},
            connected=False, ts=datetime.now(UTC),
        )  # fmt: skip
        store.heartbeat(lagging)
        result = confirm(store, "exp", new.version, timeout_s=0.2)
        assert result.summary() == "applied by 2 of 3 live processes" and not result.complete
        (line,) = result.warnings()
        assert "h:9:z has not applied v2" in line and "at v1" in line and "unreachable" in line
        assert result.to_json()["pending"] == [
            {"process": "h:9:z", "name": "abllm serve", "version": 1}
        ]
    finally:
        for view in views[1:]:
            view.close()


def test_sqlite_file_replaced_under_a_running_view(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.sqlite"
    store = open_state(url)
    view = StateView(store, poll_interval_s=0.05).start()
    try:
        bump(store, 4)
        wait_for(lambda: view.state("exp") is not None and view.state("exp").version == 4)  # type: ignore[union-attr]
        os.replace(tmp_path / "s.sqlite", tmp_path / "old.sqlite")
        other = open_state(url)
        other.apply("exp", lambda s: replace(s, killed=True), actor="ops", action="kill")
        wait_for(lambda: view.get("exp").killed)
        other.close()
    finally:
        view.close()
        store.close()


def test_reset_while_stopped_is_caught_through_the_cache(reset_url: str, tmp_path: Path) -> None:
    """All processes stop, the store loses everything, they start again: the kill holds."""
    cache = tmp_path / "state-cache.json"
    store = open_state(reset_url)
    store.apply("exp", lambda s: replace(s, killed=True), actor="ops", action="kill")
    StateView(store, cache_path=cache).start().close()
    store.close()
    reset(reset_url)
    store = open_state(reset_url)
    view = StateView(store, cache_path=cache, name="restarted").start()
    try:
        assert view.get("exp").killed and view.resets == 1
        back = store.get("exp")
        assert back is not None and back.killed
        assert store.audit("exp")[-1].action == "restore"
    finally:
        view.close()
        store.close()
