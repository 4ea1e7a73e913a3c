"""The kill switch after Redis restarts empty, with ``abllm serve`` and the CLI as users run them.

Before epochs, the serving process ignored every state written after the restart (its version
was lower than the last one seen) and ``abllm kill`` printed success while 40 of 40 requests
still got the treatment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from abllm.assign import assign
from abllm.config import loads_experiments
from abllm.state import open_state

from .servers import RedisServer, Serve, run_cli

pytestmark = pytest.mark.redis

CONFIG = """
experiments:
  - id: exp_summarize_v2
    variants:
      - id: control
        control: true
        weight: 1
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        weight: 99
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""
EXP = loads_experiments(CONFIG).experiments[0]
TREATED = [
    u for u in (f"user-{i}" for i in range(400)) if assign(EXP, u).variant_id == "treatment"
][:40]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def serve(tmp_path: Path, redis_server: RedisServer) -> Iterator[Serve]:
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    proc = Serve(
        tmp_path,
        config,
        "--store",
        "duckdb:///./data/events.duckdb",
        "--state",
        redis_server.url,
        "--spool-dir",
        "./data/spool",
        "--sticky",
        "never",
    )
    try:
        yield proc.wait_healthy()
    finally:
        proc.stop()


def served(serve: Serve) -> list[str]:
    return [serve.chat(EXP.id, unit) for unit in TREATED]


def wait_until(pred, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_kill_after_redis_restarts_empty(
    tmp_path: Path, redis_server: RedisServer, serve: Serve
) -> None:
    state = ("--state", redis_server.url)
    assert len(TREATED) == 40
    assert served(serve) == ["treatment"] * 40
    for command in ("kill", "resume") * 3:  # the process has now seen state version 7
        done = run_cli(command, EXP.id, *state, "--wait", "10", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "applied by 1 of 1 live process" in done.stdout
    assert served(serve) == ["treatment"] * 40

    redis_server.restart()  # comes back empty: epoch, states and heartbeats are gone

    # the user kills at once, registering the experiment from its config: state version 2
    done = run_cli(
        "kill", EXP.id, *state, "--config", str(tmp_path / "exp.yaml"), "--wait", "10",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "applied by 1 of 1 live process" in done.stdout
    assert served(serve) == ["control"] * 40

    # a second restart, and the user acts at once without --config: the CLI waits for the
    # serving process to write back the state it applied, then resumes on top of it
    redis_server.restart()
    done = run_cli("resume", EXP.id, *state, "--wait", "10", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "applied by 1 of 1 live process" in done.stdout
    assert served(serve) == ["treatment"] * 40
    store = open_state(redis_server.url)
    try:
        audit = store.audit(EXP.id)
        assert [a.action for a in audit] == ["restore", "resume"]
        assert audit[0].changes["killed"] == [False, True]  # the kill came back, then resume
        assert audit[0].actor.startswith("abllm serve ")
    finally:
        store.close()
