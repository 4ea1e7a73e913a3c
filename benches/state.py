"""Runtime state on the request path, and how fast a kill reaches another process.

Measured, in the same run:

- ``hot_path``: cost per request of reading an experiment's runtime state —
  ``StateView.get`` (abllm: an in-memory dict kept fresh in the background) next to the peer,
  seed 000's "a Redis key that your middleware checks on every request" (one ``GET`` per
  request, redis-py, local server).
- ``propagation``: seconds from a kill being committed by one store object to another
  connection's ``StateView`` serving it, for PostgreSQL LISTEN/NOTIFY, Redis pub/sub and the
  embedded SQLite file (in one process the write notifies views directly; other processes
  poll it every 0.25 s, so their bound is the poll interval); p50/p95 over ``--changes``
  toggles. The issue asks
  for under 1 s; seed 000 asks for a kill "in under 60 seconds".

Prints one JSON document. Usage: python benches/state.py [--requests 200000] [--changes 50]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from abllm.state import StateView, open_state, replace

PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"


def hot_path(requests: int) -> dict[str, Any]:
    import redis

    prefix = f"bench_{uuid.uuid4().hex[:8]}:"
    store = open_state(f"{REDIS}?prefix={prefix}")
    store.apply("exp", lambda s: replace(s, killed=True), actor="bench", action="kill")
    view = StateView(store).start()
    try:
        t = time.perf_counter()
        for _ in range(requests):
            view.get("exp").killed  # noqa: B018
        ours = (time.perf_counter() - t) / requests
        client = redis.Redis.from_url(REDIS)
        client.set(f"{prefix}kill:exp", "1")
        n = max(1, requests // 20)  # a round trip each: fewer requests keep the run short
        t = time.perf_counter()
        for _ in range(n):
            client.get(f"{prefix}kill:exp") == b"1"  # noqa: B015
        peer = (time.perf_counter() - t) / n
        keys = list(client.scan_iter(match=f"{prefix}*"))
        client.delete(*keys)
        client.close()
    finally:
        view.close()
        store.close()
    return {
        "state_view_get_us": round(ours * 1e6, 3),
        "peer_redis_get_per_request_us": round(peer * 1e6, 2),
        "speedup": round(peer / ours, 1),
    }


def propagation(url: str, changes: int, cleanup: Callable[[], None]) -> dict[str, Any]:
    writer, reader = open_state(url), open_state(url)
    view = StateView(reader, poll_interval_s=0.25).start()
    delays = []
    try:
        time.sleep(0.3)
        for i in range(changes):
            killed = i % 2 == 0
            t = time.perf_counter()
            writer.apply("exp", lambda s, k=killed: replace(s, killed=k), actor="bench")
            while view.get("exp").killed != killed:
                time.sleep(0.0002)
            delays.append(time.perf_counter() - t)
    finally:
        view.close()
        writer.close()
        reader.close()
        cleanup()
    delays.sort()
    return {
        "p50_ms": round(statistics.median(delays) * 1000, 2),
        "p95_ms": round(delays[int(0.95 * (len(delays) - 1))] * 1000, 2),
        "max_ms": round(delays[-1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()

    import psycopg
    import redis

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    prefix = f"bench_{uuid.uuid4().hex[:8]}:"

    def drop_schema() -> None:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def drop_keys() -> None:
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()

    with tempfile.TemporaryDirectory() as tmp:
        out = {
            "machine": {"python": platform.python_version(), "cpu": platform.machine()},
            "hot_path": hot_path(args.requests),
            "propagation": {
                "postgres_notify": propagation(f"{PG}?schema={schema}", args.changes, drop_schema),
                "redis_pubsub": propagation(f"{REDIS}?prefix={prefix}", args.changes, drop_keys),
                "embedded_sqlite_same_process": propagation(
                    f"sqlite:///{tmp}/state.sqlite", min(args.changes, 20), lambda: None
                ),
            },
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
