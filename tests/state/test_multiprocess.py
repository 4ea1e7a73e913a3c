"""Two gateway-like processes sharing PostgreSQL, and again sharing Redis.

A kill and a stage change are seen by both within a second; the kill holds after both
restart; when the push channel drops (``pg_terminate_backend`` / ``CLIENT KILL``) and cannot
reconnect, polling carries the next change within a second.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from abllm.config import Experiment
from abllm.rollout import advance, kill, register_experiment, resume
from abllm.state import StateStore, open_state

from .conftest import drop_pg_schema, drop_redis_prefix

SCRIPT = Path(__file__).with_name("view_process.py")
EXP = Experiment.model_validate(
    {
        "id": "exp_mp",
        "variants": [
            {"id": "control", "control": True, "llm": {"model": "m"}},
            {"id": "t", "llm": {"model": "m"}},
        ],
        "rollout": {"stages": [{"traffic": 5}, {"traffic": 25}, {"traffic": 50}]},
    }
)


class Proc:
    """A running view_process.py; its JSON lines arrive on a queue."""

    def __init__(self, url: str, *extra: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, str(SCRIPT), url, EXP.id, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self.next_line(timeout=20) == "ready"

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout: float) -> str:
        return self.lines.get(timeout=timeout)

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            line = json.loads(self.next_line(max(0.01, end - time.monotonic())))
            if pred(line):
                return line

    def stop(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.close()
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.p.kill()
            self.p.wait()


def _scenario(url: str, drop_push: Callable[[], int] | None) -> None:
    writer: StateStore = open_state(url)
    register_experiment(writer, EXP, actor="serve")
    procs = [Proc(url), Proc(url)]
    try:
        for p in procs:
            p.wait_for(lambda line: line["traffic"] == 5)
        t0 = time.time()
        kill(writer, EXP.id, actor="ops", reason="test")
        for p in procs:
            assert p.wait_for(lambda line: line["killed"])["t"] - t0 < 1.0
        t0 = time.time()
        advance(writer, EXP.id, actor="ops")
        for p in procs:
            line = p.wait_for(lambda line: line["traffic"] == 25)
            assert line["t"] - t0 < 1.0 and line["killed"]
        # both restart: the kill holds
        for p in procs:
            p.stop()
        procs = [Proc(url, "--block-reconnect", "2"), Proc(url, "--block-reconnect", "2")]
        for p in procs:
            first = json.loads(p.next_line(timeout=5))
            assert first["killed"] and first["traffic"] == 25
        if drop_push is None:  # embedded: no push channel between processes, polling only
            t0 = time.time()
            resume(writer, EXP.id, actor="ops")
            for p in procs:
                assert p.wait_for(lambda line: not line["killed"])["t"] - t0 < 1.0
            return
        # the push channel drops and cannot come back for 2 s: polling carries the resume
        assert drop_push() == 2
        time.sleep(0.3)
        t0 = time.time()
        resume(writer, EXP.id, actor="ops")
        for p in procs:
            line = p.wait_for(lambda line: not line["killed"])
            assert line["t"] - t0 < 1.0
            assert not line["push"]  # seen by polling, not by push
        # the push channel comes back by itself and carries the next change
        for p in procs:
            p.wait_for(lambda line: line["push"], timeout=10)
        t0 = time.time()
        advance(writer, EXP.id, actor="ops")
        for p in procs:
            line = p.wait_for(lambda line: line["traffic"] == 50)
            assert line["t"] - t0 < 1.0 and line["push"]
    finally:
        for p in procs:
            p.stop()
        writer.close()


def test_two_processes_share_an_embedded_file(tmp_path: Path) -> None:
    _scenario(f"sqlite:///{tmp_path}/state.sqlite", None)


@pytest.mark.postgres
def test_two_processes_share_postgres(pg_url: str, unique_name: str) -> None:
    import psycopg

    url = f"{pg_url}?schema={unique_name}"

    def drop_push() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'abllm-state-listener' AND query LIKE %s",
                (f"%abllm_state_{unique_name}%",),
            ).fetchall()
        return len(rows)

    try:
        _scenario(url, drop_push)
    finally:
        drop_pg_schema(pg_url, unique_name)


@pytest.mark.redis
def test_two_processes_share_redis(redis_url: str, unique_name: str) -> None:
    import redis

    prefix = f"{unique_name}:"
    url = f"{redis_url}?prefix={prefix}"

    def drop_push() -> int:
        client = redis.Redis.from_url(redis_url)
        mine = [
            c for c in client.client_list() if c.get("name") == f"abllm-state-listener-{prefix}"
        ]
        for c in mine:
            client.client_kill_filter(_id=c["id"])
        client.close()
        return len(mine)

    try:
        _scenario(url, drop_push)
    finally:
        drop_redis_prefix(redis_url, prefix)
