"""Several gateway processes on one PostgreSQL store: two ``abllm serve`` in one folder, and
``abllm serve --workers N`` (one port, a dead worker replaced, every acknowledged event kept)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.serve_process import GUARD_CONFIG, chat, serving

from abllm.events import open_store

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(pg_url: str, unique_name: str) -> Iterator[str]:
    import psycopg

    yield f"{pg_url}?schema={unique_name}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(GUARD_CONFIG)
    return cfg


def _post_event(port: int, event_id: str) -> bool:
    """POST one event; True once the server acknowledged it (200)."""
    body = [{"event_id": event_id, "type": "outcome", "experiment_id": "exp_guard",
             "unit_id": f"u-{event_id[:6]}", "metrics": {"score": 1.0}}]  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()}


def _running(pid: int) -> bool:
    """Alive and not a zombie (nobody may reap a worker whose supervisor was killed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stored_ids(store_url: str) -> set[str]:
    store = open_store(store_url)
    try:
        return {str(row[0]) for row in store.query("SELECT event_id FROM abllm_events")}
    finally:
        store.close()


def test_workers_refused_with_the_embedded_store(tmp_path: Path) -> None:
    abllm = Path(sys.executable).parent / "abllm"
    done = subprocess.run(
        [str(abllm), "serve", str(_config(tmp_path)), "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers 2 needs a server event store" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_serve_in_one_folder_both_start(tmp_path: Path, pg_store: str) -> None:
    # Before: the second died with "spool directory abllm-data/spool is in use by another process".
    cfg = _config(tmp_path)
    same = ("--spool-dir", str(tmp_path / "abllm-data" / "spool"))
    with (
        serving(cfg, pg_store, tmp_path, "a", same) as a,
        serving(cfg, pg_store, tmp_path, "b", same) as b,
    ):
        assert chat(a, "u1") in ("control", "treatment")
        assert chat(b, "u2") in ("control", "treatment")
    assert list((tmp_path / "abllm-data" / "spool").glob("proc-*")) == []


@pytest.mark.slow
def test_kill_9_of_a_worker_under_load_loses_no_acknowledged_event(
    tmp_path: Path, pg_store: str
) -> None:
    from tests.serve_process import PROCESSES

    cfg = _config(tmp_path)
    acked: list[str] = []
    stop = threading.Event()

    def load(port: int) -> None:
        while not stop.is_set():
            event_id = str(uuid.uuid4())
            if _post_event(port, event_id):
                acked.append(event_id)

    with serving(cfg, pg_store, tmp_path, "w", ("--workers", "2")) as port:
        supervisor = PROCESSES[port]
        deadline = time.monotonic() + 30
        while len(_children(supervisor.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(supervisor.pid)
        assert len(workers) == 2
        threads = [threading.Thread(target=load, args=(port,)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        time.sleep(1.5)
        while len(_children(supervisor.pid) - {victim}) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        replaced = _children(supervisor.pid)
        assert victim not in replaced and len(replaced) == 2  # the dead worker was replaced
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
    # SIGINT drained both workers (serving asserts exit 0); every 200 is in the store.
    assert len(acked) > 50
    missing = set(acked) - _stored_ids(pg_store)
    assert missing == set(), f"{len(missing)} acknowledged events lost"


@pytest.mark.slow
def test_spool_of_a_worker_killed_during_an_outage_is_replayed(tmp_path: Path) -> None:
    """Acknowledged from the spool while PostgreSQL is down, then the worker is SIGKILLed: the
    replacement (or the other worker) adopts the dead worker's spool once the store is back."""
    from tests.events.pgcluster import ThrowawayPostgres
    from tests.serve_process import PROCESSES

    pg = ThrowawayPostgres()
    try:
        pg.start()
        cfg = _config(tmp_path)
        with serving(cfg, pg.url, tmp_path, "o", ("--workers", "2")) as port:
            supervisor = PROCESSES[port]
            pg.stop()
            ids = [str(uuid.uuid4()) for _ in range(40)]
            acked = [i for i in ids if _post_event(port, i)]
            assert len(acked) == len(ids)  # durable in the workers' spools
            for victim in _children(supervisor.pid):
                os.kill(victim, signal.SIGKILL)  # both: whoever spooled, its spool is orphaned
            pg.start()
            deadline = time.monotonic() + 60
            while set(acked) - _stored_ids(pg.url) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert set(acked) - _stored_ids(pg.url) == set()
            store = open_store(pg.url)
            try:
                total, distinct = store.query(
                    "SELECT count(*), count(DISTINCT event_id) FROM abllm_events"
                )[0]
            finally:
                store.close()
            assert total == distinct == len(acked)
    finally:
        pg.cleanup()


def test_kill_switch_reaches_every_worker(tmp_path: Path, pg_store: str) -> None:
    cfg = _config(tmp_path)
    abllm = Path(sys.executable).parent / "abllm"
    with serving(cfg, pg_store, tmp_path, "k", ("--workers", "2")) as port:
        assert {chat(port, f"u{i}") for i in range(30)} == {"control", "treatment"}
        done = subprocess.run(
            # --wait 1: both workers must confirm within a second
            [str(abllm), "kill", "exp_guard", "--store", pg_store, "--wait", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "applied by 2 of 2 live processes" in done.stdout, done.stdout + done.stderr
        started = time.monotonic()
        # New connections land on either worker; every one already serves control.
        served = {chat(port, f"u{i}") for i in range(30)}
        assert served == {"control"}
        assert time.monotonic() - started < 5


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path, pg_store: str) -> None:
    from tests.serve_process import PROCESSES

    with serving(_config(tmp_path), pg_store, tmp_path, "s", ("--workers", "2")) as port:
        supervisor = PROCESSES[port]
        workers = _children(supervisor.pid)
        supervisor.kill()
        supervisor.wait()
        deadline = time.monotonic() + 20
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(w) for w in workers)  # drained and gone
