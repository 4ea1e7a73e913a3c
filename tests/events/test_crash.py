"""Crash test: a process ingesting continuously is SIGKILLed 10 times in a row.

The child prints the index of the last event of each batch once ``submit_sync`` returned (the
acknowledgement). Every other run finds the store down, so its events are acknowledged from the
spool, and the run after it replays that spool while ingesting. After the tenth kill and a
restart, every acknowledged event must be in the store, and
``count(*) == count(DISTINCT event_id)``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest

from abllm.events import EventPipeline, open_store

CHILD = """
import sys
from uuid import UUID
from abllm.errors import StoreUnavailable
from abllm.events import Event, EventPipeline, open_store

class DownStore:
    dialect = "duckdb"
    events_relation = "abllm_events"
    def append(self, events):
        raise StoreUnavailable("down (test)")

url, spool, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
# Odd runs find the store down: their acknowledgements come from the fsynced spool, which the
# next run replays (and may itself be killed while replaying).
store = open_store(url) if run % 2 == 0 else DownStore()
pipeline = EventPipeline(store, spool_dir=spool, flush_interval_s=0.005, retry_interval_s=0.01)
i = 0
while True:
    batch = [
        Event(event_id=UUID(int=run << 64 | (i + k)), type="llm_call", experiment_id="crash",
              unit_id=f"u{(i + k) % 97}", metrics={"latency_ms": k})
        for k in range(50)
    ]
    pipeline.submit_sync(batch)
    i += 50
    print(i, flush=True)
"""

KILLS = 10


def _run_and_kill(url: str, spool: Path, run: int, rng: random.Random) -> int:
    """Start the child; once it acknowledged a batch, let it run a moment, then SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(spool), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked = 0
    ready = threading.Event()

    def read() -> None:
        nonlocal acked
        assert proc.stdout is not None
        for line in proc.stdout:
            acked = int(line)  # only ever grows: batches are acknowledged in order
            ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(30):
        proc.kill()
        raise AssertionError(f"child did not start: {proc.stderr.read() if proc.stderr else ''}")
    time.sleep(rng.uniform(0.15, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join(5)
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.slow
def test_sigkill_ten_times_loses_no_acknowledged_event(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/events.duckdb"
    spool = tmp_path / "spool"
    rng = random.Random(4)
    acked = [_run_and_kill(url, spool, run, rng) for run in range(KILLS)]
    assert all(n > 0 for n in acked), acked

    store = open_store(url)  # restart: replay whatever the spool holds, then check
    pipeline = EventPipeline(store, spool_dir=spool)
    assert pipeline.drain(30)
    pipeline.close()
    try:
        total, distinct = store.query(
            "SELECT count(*), count(DISTINCT event_id) FROM abllm_events"
        )[0]
        assert total == distinct
        stored = {row[0] for row in store.query("SELECT event_id FROM abllm_events")}
        missing = [
            (run, i)
            for run, n in enumerate(acked)
            for i in range(n)
            if UUID(int=run << 64 | i) not in stored
        ]
        assert missing == [], f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
        assert total >= sum(acked)
    finally:
        store.close()
