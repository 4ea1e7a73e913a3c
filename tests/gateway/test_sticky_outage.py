"""A frozen or dead sticky store (Redis) never fails or stalls a request: new units get their
hash assignment (counted in ``abllm_sticky_fallbacks_total``), /healthz and other chats carry on."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from abllm.assign import assign
from abllm.assign.sticky import StickyAssigner
from abllm.state.sticky import RedisStickyStore

from .http import get, post

CONFIG = """
experiments:
  - id: exp_sticky
    variants:
      - id: control
        control: true
        llm: {model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""
MESSAGES = [{"role": "user", "content": "hello"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def throwaway_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, to freeze (SIGSTOP) and kill."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="abllm-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def chat(url: str, user: str) -> tuple[int, float]:
    started = time.monotonic()
    reply = post(
        f"{url}/v1/chat/completions", {"model": "exp_sticky", "messages": MESSAGES, "user": user}
    )
    return reply.status_code, time.monotonic() - started


def fallbacks(url: str) -> float:
    """``abllm_sticky_fallbacks_total`` for the experiment, summed over causes."""
    total = 0.0
    for line in get(f"{url}/metrics").text.splitlines():
        if line.startswith('abllm_sticky_fallbacks_total{cause="') and "exp_sticky" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_frozen_then_dead_redis_falls_back_to_the_hash_assignment(live, throwaway_redis) -> None:
    redis_url, proc = throwaway_redis
    store = RedisStickyStore(redis_url)
    gw = live(CONFIG, assigner=StickyAssigner(store))
    exp = gw.experiments["exp_sticky"]
    assert chat(gw.url, "known-unit")[0] == 200  # stored, and memoised by the gateway
    assert store.get_many("exp_sticky", exp.version, ["user:known-unit"])

    proc.send_signal(signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(12) as pool:
            new_units = [pool.submit(chat, gw.url, f"frozen-{i}") for i in range(20)]
            time.sleep(0.05)
            health = []
            for _ in range(5):
                started = time.monotonic()
                assert get(f"{gw.url}/healthz").status_code == 200
                health.append(time.monotonic() - started)
            known = [chat(gw.url, "known-unit") for _ in range(3)]
            results = [f.result() for f in new_units]
    finally:
        proc.send_signal(signal.SIGCONT)
    assert [code for code, _ in results] == [200] * 20
    assert max(seconds for _, seconds in results) < 1.5  # was 500 after 2-6 s
    assert max(health) < 0.2  # was 8 s
    assert all(code == 200 and seconds < 0.5 for code, seconds in known)  # was 14 s
    assert fallbacks(gw.url) >= 20
    # The served variant is the unit's hash assignment.
    events = {e.unit_id: e.variant_id for e in gw.events.of("exposure")}
    assert events["frozen-3"] == assign(exp, "frozen-3").variant_id

    proc.kill()
    proc.wait(10)
    before = fallbacks(gw.url)
    codes = [chat(gw.url, f"down-{i}")[0] for i in range(10)]
    assert codes == [200] * 10  # was 500 for every new unit
    assert fallbacks(gw.url) >= before + 10
    store.close()
