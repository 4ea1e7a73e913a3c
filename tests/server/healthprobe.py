"""A /healthz poller for tests that must show the event loop never stalls."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any


class HealthProbe:
    """Polls /healthz from another thread and keeps the slowest answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.bodies: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as resp:
                    self.bodies.append(json.loads(resp.read()))
            except Exception as exc:
                self.errors.append(repr(exc))
            self.slowest = max(self.slowest, time.perf_counter() - started)
            time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


_PROBE_SCRIPT = """
import json, sys, threading, time, urllib.request
url = sys.argv[1]
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
took, errors = [], []
while not done.is_set():
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            resp.read()
    except Exception as exc:
        errors.append(repr(exc))
    took.append(time.perf_counter() - started)
    time.sleep(0.02)
took.sort()
p99 = took[int(0.99 * (len(took) - 1))] if took else 0.0
print(json.dumps({"slowest": took[-1] if took else 0.0, "p99": p99, "errors": errors[:5],
                  "n": len(took)}))
"""


class ProcessHealthProbe:
    """``HealthProbe`` in its own process: what it measures is the server, not this process's
    garbage collector or a test's CPU-heavy data generation holding the GIL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.p99 = 0.0
        self.errors: list[str] = []
        self.count = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ProcessHealthProbe:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE_SCRIPT, self.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        out, _ = self._proc.communicate("", timeout=30)
        report = json.loads(out)
        self.slowest, self.errors, self.count = report["slowest"], report["errors"], report["n"]
        self.p99 = report["p99"]
