"""``/healthz`` verdicts from real pipeline snapshots: ok, degraded while spooling, down when
events can be neither stored nor spooled; the controller's slot."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from abllm.errors import StoreUnavailable
from abllm.events import Event, EventPipeline, open_store
from abllm.server.health import health


class Switchable:
    """A DuckDB store that can be taken down (a test fake)."""

    dialect = "duckdb"
    events_relation = "abllm_events"

    def __init__(self) -> None:
        self.inner = open_store("duckdb:///:memory:")
        self.down = False

    def append(self, events: Sequence[Event]) -> int:
        if self.down:
            raise StoreUnavailable("down (test)")
        return self.inner.append(events)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.inner.query(sql, params)

    def count(self, experiment_id: str | None = None) -> int:
        return self.inner.count(experiment_id)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def store() -> Iterator[Switchable]:
    s = Switchable()
    yield s
    s.close()


def ev(i: int) -> Event:
    return Event(type="outcome", experiment_id="e", unit_id=f"u{i}", metrics={"rating": 1})


def test_verdicts_follow_the_pipeline(store: Switchable, tmp_path: Path) -> None:
    p = EventPipeline(store, spool_dir=tmp_path / "spool", spool_limit_bytes=4_000)
    try:
        assert health(False, 1, p, None, None)[0] == 503  # not started
        status, body = health(True, 1, p, None, None)
        assert (status, body["status"], body["store"]["status"]) == (200, "ok", "up")
        assert body["state"] == {"status": "none"} and body["controller"] is None

        store.down = True
        p.submit_sync([ev(i) for i in range(3)])  # acknowledged from the spool
        status, body = health(True, 1, p, None, None)
        assert (status, body["status"], body["store"]["status"]) == (200, "degraded", "down")
        assert body["spool"]["status"] == "replaying" and body["spool"]["bytes"] > 0

        with pytest.raises(Exception, match="spool"):
            while True:  # fill the spool: events can no longer be acknowledged
                p.submit_sync([ev(i) for i in range(5)])
        status, body = health(True, 1, p, None, None)
        assert (status, body["status"], body["spool"]["status"]) == (503, "down", "full")

        store.down = False
        assert p.drain(10)
        assert health(True, 1, p, None, None)[1]["status"] == "ok"
        assert (
            health(True, 1, p, None, {"status": "down", "error": "lease lost"})[1]["status"]
            == "degraded"
        )
        assert health(True, 1, p, None, {"status": "up"})[1]["status"] == "ok"
    finally:
        p.close()


class Hanging(Switchable):
    """A store whose writes block until released: a hang with no timeout of its own."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.release = threading.Event()

    def append(self, events: Sequence[Event]) -> int:
        self.release.wait()
        return super().append(events)


def test_a_write_that_never_returns_gets_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.error
    import urllib.request

    from abllm.config import loads_experiments
    from abllm.server import ServerThread, create_app, routes

    monkeypatch.setattr(routes, "SUBMIT_WAIT_S", 0.5)
    store = Hanging()
    pipeline = EventPipeline(store, spool_dir=tmp_path / "spool")
    config = loads_experiments(
        "experiments:\n  - id: e\n    variants:\n      - id: a\n        control: true\n"
        "        llm: {provider: sim, model: sim-small}\n      - id: b\n"
        "        llm: {provider: sim, model: sim-large}\n"
    )
    try:
        with ServerThread(create_app(config, store, pipeline=pipeline)) as srv:
            body = b'[{"type": "outcome", "experiment_id": "e", "unit_id": "u"}]'
            req = urllib.request.Request(
                f"{srv.url}/v1/events", body, {"Content-Type": "application/json"}
            )
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(req, timeout=10)
            assert info.value.code == 503 and info.value.headers["Retry-After"] == "1"
            assert json.loads(info.value.read())["error"]["code"] == "store_unavailable"
            store.release.set()
    finally:
        store.release.set()
        pipeline.close()
        store.close()
