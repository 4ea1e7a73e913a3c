"""``abllm serve`` in a child process, as users run it, for tests that need a separate server."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_serve(config: str, tmp_path: Path, *options: str) -> Iterator[str]:
    """Start ``abllm serve`` on a free port with ``options``; yield its base URL once
    ``/healthz`` answers; stop it with Ctrl-C (SIGINT) afterwards."""
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    abllm = Path(sys.executable).parent / "abllm"
    proc = subprocess.Popen(
        [str(abllm), "serve", str(cfg), "--port", str(port), *options],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"abllm serve exited {proc.returncode}: {output}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/healthz", timeout=2),
            ):
                break
            assert time.monotonic() < deadline, "abllm serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
