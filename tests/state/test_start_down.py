"""``abllm serve`` while the state backend is down: start anyway, serve the cached state (or
control), register and re-adopt when it answers. (It exited 2 before.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from abllm.errors import StoreUnavailable
from abllm.rollout import register_experiments
from abllm.state import ExperimentState, StateStore, StateView, open_state, replace
from abllm.state.startup import start_view

from .servers import RedisServer, Serve, run_cli
from .test_reset_e2e import CONFIG, EXP, TREATED


def wait_until(pred: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class _Down:
    """A store that is unreachable until ``up`` is set (wraps a real one)."""

    def __init__(self, inner: StateStore) -> None:
        self.inner, self.up = inner, False
        self.url, self.kind = inner.url, inner.kind

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.inner, name)
        if not callable(attr) or name in ("subscribe", "close"):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            if not self.up:
                raise StoreUnavailable("state backend unreachable")
            return attr(*args, **kwargs)

        return call


def test_view_serves_control_until_the_store_answers_then_registers(tmp_path: Path) -> None:
    inner = open_state("memory://")
    store = _Down(inner)
    registered: list[int] = []

    def register(s: StateStore) -> None:
        registered.append(1)
        register_experiments(s, [EXP], actor="abllm serve")

    view = start_view(store, register, cache_path=tmp_path / "cache.json")  # type: ignore[arg-type]
    view.poll_interval_s = 0.05
    try:
        assert view.get(EXP.id).paused  # no state and no cache: control for everyone
        status = view.status()
        assert (status.status, status.source) == ("down", "defaults")
        store.up = True
        wait_until(lambda: view.state(EXP.id) is not None)
        assert registered and not view.get(EXP.id).paused
        assert view.status().status == "connected" and view.status().source == "store"
    finally:
        view.close()
        inner.close()


def test_cache_of_another_store_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    a = open_state(f"sqlite:///{tmp_path}/a.sqlite")
    a.apply(EXP.id, lambda s: replace(s, killed=True), actor="ops", action="kill")
    StateView(a, cache_path=cache).start().close()
    assert cache.is_file()
    b = _Down(open_state(f"sqlite:///{tmp_path}/b.sqlite"))
    view = StateView(b, cache_path=cache).start()  # type: ignore[arg-type]
    try:
        assert view.status().source == "defaults" and view.get(EXP.id).paused
    finally:
        view.close()
    same = _Down(open_state(f"sqlite:///{tmp_path}/a.sqlite"))
    view = StateView(same, cache_path=cache).start()  # type: ignore[arg-type]
    try:
        assert view.status().source == "cache" and view.get(EXP.id).killed
    finally:
        view.close()


@pytest.mark.redis
def test_serve_starts_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    redis_server = RedisServer(tmp_path)  # not started: the state backend is down
    args = (
        "--store", "duckdb:///./data/events.duckdb", "--state", redis_server.url,
        "--spool-dir", "./data/spool", "--sticky", "never",
    )  # fmt: skip
    serve = Serve(tmp_path, config, *args).wait_healthy()
    try:
        assert {serve.chat(EXP.id, u) for u in TREATED[:10]} == {"control"}
        health = serve.get("/healthz")["state"]
        assert (health["status"], health["source"], health["backend"]) == (
            "down",
            "defaults",
            "redis",
        )
        redis_server.start()
        store = open_state(redis_server.url)
        wait_until(lambda: store.get(EXP.id) is not None)  # registered once Redis answers
        wait_until(lambda: serve.chat(EXP.id, TREATED[0]) == "treatment")
        done = run_cli("kill", EXP.id, "--state", redis_server.url, "--wait", "10", cwd=tmp_path)
        assert done.returncode == 0 and "applied by 1 of 1 live process" in done.stdout
        assert {serve.chat(EXP.id, u) for u in TREATED} == {"control"}
        health = serve.get("/healthz")["state"]
        assert health["status"] == "connected" and health["source"] == "store"
        assert health["applied"] == {EXP.id: 2} and health["epoch"] == store.epoch()
        store.close()
    finally:
        serve.stop()
    assert (tmp_path / "data" / "spool" / "state-cache.json").is_file()

    redis_server.stop()  # down again: a restart serves the cached kill
    serve = Serve(tmp_path, config, *args).wait_healthy()
    try:
        assert {serve.chat(EXP.id, u) for u in TREATED} == {"control"}
        redis_server.start()  # back, but empty: the kill is written back, not lost
        store = open_state(redis_server.url)
        wait_until(lambda: store.get(EXP.id) is not None)
        got: ExperimentState | None = store.get(EXP.id)
        assert got is not None and got.killed
        assert {serve.chat(EXP.id, u) for u in TREATED} == {"control"}
        store.close()
    finally:
        serve.stop()
        redis_server.stop()


def test_opening_postgres_state_needs_no_server(tmp_path: Path) -> None:
    """Opening connects lazily: a serving process starts while PostgreSQL is down."""
    from abllm.state.sticky import open_sticky

    url = "postgresql://postgres@127.0.0.1:9/test?schema=abllm_down"  # discard port: refused
    store = open_state(url)
    open_sticky(url).close()
    view = start_view(
        store,
        lambda s: register_experiments(s, [EXP], actor="abllm serve"),
        cache_path=tmp_path / "cache.json",
    )
    try:
        assert view.get(EXP.id).paused and view.status().status == "down"
        with pytest.raises(StoreUnavailable):
            store.get(EXP.id)
    finally:
        view.close()
        store.close()


@pytest.mark.postgres
def test_serve_starts_while_postgres_state_is_down_and_recovers(tmp_path: Path) -> None:
    from events.pgcluster import ThrowawayPostgres

    pg = ThrowawayPostgres()  # initialised, not started: the state backend is down
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    state_url = f"{pg.url}?schema=abllm_start"
    serve = Serve(
        tmp_path, config, "--store", "duckdb:///./data/events.duckdb", "--state", state_url,
        "--spool-dir", "./data/spool",
    )  # fmt: skip
    try:
        serve.wait_healthy()
        assert {serve.chat(EXP.id, u) for u in TREATED[:10]} == {"control"}
        assert serve.get("/healthz")["state"]["status"] == "down"
        pg.start()
        wait_until(lambda: serve.chat(EXP.id, TREATED[0]) == "treatment", timeout=30)
        done = run_cli("kill", EXP.id, "--state", state_url, "--wait", "10", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "applied by 1 of 1 live process" in done.stdout
        assert {serve.chat(EXP.id, u) for u in TREATED} == {"control"}
        assert serve.get("/healthz")["state"]["status"] == "connected"
    finally:
        serve.stop()
        pg.cleanup()
