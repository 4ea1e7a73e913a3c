"""Soak: mixed traffic against ``abllm serve`` on PostgreSQL while the store goes down, freezes
and the server process is killed with SIGKILL.

Prints one JSON document: events acknowledged by ``/v1/events`` and ``/v1/feedback`` against
those found in the store at the end (the difference must be 0), latency percentiles per route,
response codes, and the server's RSS over time. Chat ``llm_call``/``exposure`` events are not
in the acknowledged count: they are best-effort on SIGKILL by design (docs/events.md).

The store is a throwaway PostgreSQL cluster (``tests/events/pgcluster.py``); every
``--outage-every`` seconds it is alternately crashed (``pg_ctl -m immediate``) or frozen
(SIGSTOP) for ``--outage-s`` seconds; every ``--kill-every`` seconds the server is SIGKILLed and
started again on the same spool directory.

Usage: python benches/soak.py [--seconds 600] [--outage-every 60] [--outage-s 10]
       [--kill-every 120] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from abllm.events import open_store
from events.pgcluster import ThrowawayPostgres

CONFIG = """
experiments:
  - id: soak
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: Any, timeout: float = 15.0) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, None
    except OSError:
        return 0, None  # connection refused or reset: the server is being restarted


class Server:
    """``abllm serve`` as a child process that can be SIGKILLed and restarted."""

    def __init__(self, tmp: Path, store_url: str) -> None:
        (tmp / "soak.yaml").write_text(CONFIG)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            str(Path(sys.executable).parent / "abllm"),
            "serve",
            str(tmp / "soak.yaml"),
            "--port",
            str(self.port),
            "--store",
            store_url,
            "--state",
            f"sqlite:///{tmp / 'state.sqlite'}",
            "--sticky",
            "never",
            "--spool-dir",
            str(tmp / "spool"),
        ]
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.tmp / "serve.log").open("ab")
        self.proc = subprocess.Popen(self.args, cwd=self.tmp, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("abllm serve did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)

    def rss_mib(self) -> float | None:
        try:
            status = Path(f"/proc/{self.proc.pid if self.proc else 0}/status").read_text()
        except OSError:
            return None
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return round(int(line.split()[1]) / 1024, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[int(q * (len(ordered) - 1))] * 1000, 1) if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--outage-every", type=float, default=60)
    parser.add_argument("--outage-s", type=float, default=10)
    parser.add_argument("--kill-every", type=float, default=120)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="abllm-soak-"))
    cluster = ThrowawayPostgres()
    cluster.start()
    server = Server(tmp, cluster.url)
    server.start()
    stop = threading.Event()
    lock = threading.Lock()
    acked: set[str] = set()
    latency: dict[str, list[float]] = {"events": [], "feedback": [], "chat": []}
    codes: dict[str, Counter[int]] = {name: Counter() for name in latency}
    rss: list[tuple[float, float | None]] = []
    incidents: list[tuple[float, str]] = []
    started = time.monotonic()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            batch = [
                {
                    "event_id": str(uuid.uuid4()),
                    "type": "outcome",
                    "experiment_id": "soak",
                    "unit_id": f"c{n}-{i % 500}",
                    "metrics": {"task_completed": True},
                }
                for _ in range(10)
            ]
            calls: list[tuple[str, str, Any]] = [("events", "/v1/events", batch)]
            if i % 3 == 0:
                user = f"c{n}-{i % 500}"
                chat = {"model": "soak", "messages": [{"role": "user", "content": "hi"}]}
                calls.append(("chat", "/v1/chat/completions", {**chat, "user": user}))
                fb = {"experiment_id": "soak", "unit_id": user, "rating": i % 5 + 1}
                calls.append(("feedback", "/v1/feedback", fb))
            for name, path, body in calls:
                t = time.perf_counter()
                status, answer = post(server.url + path, body)
                elapsed = time.perf_counter() - t
                if status == 0:
                    time.sleep(0.05)  # the server is restarting: do not spin
                with lock:
                    codes[name][status] += 1
                    if status:
                        latency[name].append(elapsed)
                    if status == 200 and name == "events":
                        acked.update(e["event_id"] for e in batch)
                    if status == 200 and name == "feedback" and answer.get("recorded"):
                        acked.add(answer["event_id"])

    def chaos() -> None:
        next_outage = started + args.outage_every
        next_kill = started + args.kill_every
        freeze = False
        while not stop.wait(1.0):
            now = time.monotonic()
            rss.append((round(now - started, 1), server.rss_mib()))
            if now >= next_outage:
                incidents.append((round(now - started, 1), "freeze" if freeze else "crash"))
                if freeze:
                    cluster.freeze()
                    stop.wait(args.outage_s)
                    cluster.thaw()
                else:
                    cluster.stop("immediate")
                    stop.wait(args.outage_s)
                    cluster.start()
                freeze = not freeze
                next_outage = time.monotonic() + args.outage_every
            if now >= next_kill:
                incidents.append((round(now - started, 1), "kill -9 serve"))
                server.kill()
                server.start()
                next_kill = time.monotonic() + args.kill_every

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    threads.append(threading.Thread(target=chaos))
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join(120)

    # Let the spool drain, then stop the server normally (it flushes what it buffered).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:
                health = json.loads(resp.read())
            if health["store"]["status"] == "up" and health["spool"]["status"] == "empty":
                break
        except OSError:
            pass
        time.sleep(0.5)
    server.stop()
    store = open_store(cluster.url)
    stored = {str(row[0]) for row in store.query("SELECT event_id FROM abllm_events")}
    store.close()
    cluster.cleanup()
    values = [v for _, v in rss if v is not None]
    lost = len(acked - stored)
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "clients": args.clients,
                "incidents": incidents,
                "acknowledged": len(acked),
                "acknowledged_and_stored": len(acked & stored),
                "lost": lost,
                "latency_ms": {
                    name: {
                        "n": len(v),
                        "p50": percentile(v, 0.5),
                        "p99": percentile(v, 0.99),
                        "max": percentile(v, 1.0),
                    }
                    for name, v in latency.items()
                },
                "status_codes": {name: dict(c) for name, c in codes.items()},
                "rss_mib": {
                    "first": values[0] if values else None,
                    "max": max(values) if values else None,
                    "last": values[-1] if values else None,
                    "samples": [f"{t:g}s {v} MiB" for t, v in rss[:: max(1, len(rss) // 12)]],
                },
                "dead_letters": (tmp / "spool" / "dead-letter.jsonl").exists(),
            },
            indent=2,
        )
    )
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
