"""Per-process spools in one spool folder: several pipelines start side by side, and the spool of
a process that died (its ``flock`` gone) is adopted and replayed once by a live one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from tests.events.test_pipeline import FlakyStore, ev

from abllm.events import Event, EventPipeline
from abllm.events.spool import Spool, claim_orphans, open_own


class CountingStore(FlakyStore):
    """Counts every event id it is handed, duplicates included (a replay twice would show)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self._seen_lock = threading.Lock()

    def append(self, events: list[Event]) -> int:  # type: ignore[override]
        with self._seen_lock:
            self.seen.update(str(e.event_id) for e in events)
        return super().append(events)


def _leave_orphan(root: Path, events: list[Event]) -> Path:
    """A spool directory as a killed process leaves it: records on disk, lock released."""
    spool = open_own(root, limit_bytes=1 << 20)
    spool.append(events)
    spool.close()  # flock dropped, data kept: what the kernel does for a dead owner
    return spool.directory


def test_two_pipelines_share_one_spool_folder(tmp_path: Path) -> None:
    # Before, the second one died: "spool directory ... is in use by another process".
    store = FlakyStore()
    first = EventPipeline(store, spool_dir=tmp_path)
    second = EventPipeline(store, spool_dir=tmp_path)
    try:
        assert first.spool.directory != second.spool.directory
        assert first.spool.directory.parent == second.spool.directory.parent == tmp_path
        first.submit_sync([ev(1)])
        second.submit_sync([ev(2)])
        assert store.count() == 2
    finally:
        first.close()
        second.close()
        store.close()
    assert list(tmp_path.glob("proc-*")) == []  # clean exits leave no directory behind


def test_orphan_is_replayed_exactly_once_by_one_of_two_starters(tmp_path: Path) -> None:
    events = [ev(i) for i in range(40)]
    orphan = _leave_orphan(tmp_path, events[:20])
    _leave_orphan(tmp_path, events[20:])
    store = CountingStore()
    pipelines: list[EventPipeline] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        pipelines.append(EventPipeline(store, spool_dir=tmp_path, retry_interval_s=0.01))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for p in pipelines:
            assert p.drain(10)
        assert store.count() == 40
        assert set(store.seen) == {str(e.event_id) for e in events}
        assert max(store.seen.values()) == 1, "an orphan was replayed twice"
        assert sum(p.stats.replayed for p in pipelines) == 40
        assert not orphan.exists()  # replayed, then removed
    finally:
        for p in pipelines:
            p.close()
        store.close()


def test_a_live_owner_keeps_its_spool(tmp_path: Path) -> None:
    owner = open_own(tmp_path, limit_bytes=1 << 20)
    owner.append([ev(1)])
    try:
        assert list(claim_orphans(tmp_path, 1 << 20)) == []
    finally:
        owner.close()
    [claimed] = claim_orphans(tmp_path, 1 << 20)
    try:
        assert claimed.directory == owner.directory
        assert list(claim_orphans(tmp_path, 1 << 20)) == []  # one adopter at a time
    finally:
        claimed.close()


def test_spool_of_the_old_single_directory_layout_is_replayed(tmp_path: Path) -> None:
    old = Spool(tmp_path)
    old.append([ev(1), ev(2)])
    old.close()
    store = FlakyStore()
    pipeline = EventPipeline(store, spool_dir=tmp_path)
    try:
        assert pipeline.drain(10)
        assert store.count() == 2
        assert list(tmp_path.glob("spool-*.log")) == []
    finally:
        pipeline.close()
        store.close()


CHILD = """
import sys, time
from abllm.errors import StoreUnavailable
from abllm.events import EventPipeline
from tests.events.test_pipeline import FlakyStore, ev

store = FlakyStore()
store.down = True
pipeline = EventPipeline(store, spool_dir=sys.argv[1], retry_interval_s=60)
pipeline.submit_sync([ev(i) for i in range(25)])
print("acked", flush=True)
time.sleep(60)
"""


def test_a_running_pipeline_adopts_the_spool_of_a_killed_sibling(tmp_path: Path) -> None:
    store = CountingStore()
    survivor = EventPipeline(store, spool_dir=tmp_path, orphan_scan_s=0.1, retry_interval_s=0.01)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "acked"
        assert survivor.stats.replayed == 0  # held by its live owner
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        deadline = 100
        while survivor.stats.replayed < 25 and deadline:
            threading.Event().wait(0.05)
            deadline -= 1
        assert survivor.stats.replayed == 25
        assert store.count() == 25
        assert max(store.seen.values()) == 1
    finally:
        child.kill()
        survivor.close()
        store.close()
    assert list(tmp_path.glob("proc-*")) == []
