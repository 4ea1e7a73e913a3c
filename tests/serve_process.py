"""``abllm serve`` as a subprocess for tests: start, wait for /healthz, talk to it, stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GUARD_CONFIG = """
experiments:
  - id: exp_guard
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0.02}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0.5}}
    max_retries: 0
    guardrails:
      - {metric: error_rate, max_ratio: 2, action: pause, min_units: 50}
    rollout:
      check_interval_s: 2
"""


#: The running ``serve`` processes by port (a test may SIGKILL one to play a crash).
PROCESSES: dict[int, subprocess.Popen[bytes]] = {}


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def serving(
    cfg: Path, store: str, cwd: Path, name: str, extra: tuple[str, ...] = ()
) -> Iterator[int]:
    """``abllm serve`` in a subprocess until it answers /healthz; yields its port.

    Output goes to ``serve-<name>.log`` in ``cwd`` (a pipe nobody reads could fill and stall
    the server). On exit the process is stopped with Ctrl-C and must exit 0, unless the test
    killed it.
    """
    port = free_port()
    abllm = Path(sys.executable).parent / "abllm"
    log = cwd / f"serve-{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(str(abllm), "serve", str(cfg), "--store", store, "--port", str(port)),
                *("--spool-dir", str(cwd / f"spool-{name}")),
                *extra,
            ],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    PROCESSES[port] = proc
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, _log(log)
                assert time.monotonic() < deadline, "abllm serve did not become healthy"
                time.sleep(0.1)
        yield port
    finally:
        PROCESSES.pop(port, None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            assert proc.returncode == 0, _log(log)


def chat(port: int, unit: str) -> str:
    body = json.dumps(
        {"model": "exp_guard", "messages": [{"role": "user", "content": "hi"}], "user": unit}
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(resp.headers.get("x-abllm-variant"))
    except urllib.error.HTTPError as exc:
        return str(exc.headers.get("x-abllm-variant"))


def healthz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        data: dict[str, object] = json.loads(resp.read())
    return data
