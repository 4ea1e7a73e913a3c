"""Throwaway servers for reset and outage tests: a redis-server, an ``abllm serve`` process.

Never the shared Redis: these tests stop, restart and wipe their own server on a free port.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ABLLM = Path(sys.executable).parent / "abllm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    raise AssertionError(f"port {port} did not go {'up' if up else 'down'}")


class RedisServer:
    """A redis-server without persistence: a restart comes back empty."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary, self.tmp = binary, tmp
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, up=True)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        _wait_port(self.port, up=False)

    def restart(self) -> None:
        """Stop and start again on the same port, empty."""
        self.stop()
        self.start()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``abllm ARGS`` as a user runs it."""
    return subprocess.run(
        [str(ABLLM), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


class Serve:
    """``abllm serve CONFIG ...`` in a subprocess, on a free port."""

    def __init__(self, cwd: Path, config: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (cwd / f"serve-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [str(ABLLM), "serve", str(config), "--port", str(self.port), *args],
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = Path(self.log.name)

    def wait_healthy(self, timeout: float = 60.0) -> Serve:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (OSError, urllib.error.HTTPError):
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"abllm serve exited {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"abllm serve did not become healthy: {self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def chat(self, experiment: str, user: str) -> str:
        """The variant that served one chat for ``user``."""
        body = {"model": experiment, "messages": [{"role": "user", "content": "hi"}], "user": user}
        req = urllib.request.Request(
            f"{self.url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return str(r.headers["x-abllm-variant"])

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
