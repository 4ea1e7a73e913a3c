from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from abllm.assign import assign
from abllm.config import Experiment, loads_experiments
from abllm.events import Event
from abllm.gateway import GatewaySettings, InMemoryStateView
from abllm.server import ServerThread, create_app

from .upstream import Upstream


class Recorder:
    """Stands in for EventPipeline: keeps every event in a list."""

    store = None

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    async def submit(self, events: list[Event]) -> None:
        self.events.extend(events)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if str(e.type) == kind]


@dataclass
class Live:
    url: str
    client: OpenAI
    events: Recorder
    state: InMemoryStateView
    experiments: dict[str, Experiment]
    app: Any

    def unit_for(self, experiment_id: str, variant_id: str) -> str:
        exp = self.experiments[experiment_id]
        for i in range(10_000):
            unit = f"user-{i}"
            if assign(exp, unit).variant_id == variant_id:
                return unit
        raise AssertionError("no unit found")


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = Upstream().start()
    yield up
    up.stop()


@pytest.fixture
def fake(upstream: Upstream) -> Upstream:
    upstream.reset()
    return upstream


@pytest.fixture
def live(fake: Upstream) -> Iterator[Any]:
    """``live(yaml, settings=...)`` starts a gateway on a free port; stopped after the test."""
    servers: list[ServerThread] = []

    def start(
        yaml_text: str, settings: GatewaySettings | None = None, assigner: Any = None
    ) -> Live:
        config = loads_experiments(yaml_text.replace("BASE", fake.base_url))
        events = Recorder()
        state = InMemoryStateView()
        app = create_app(
            config,
            pipeline=events,  # type: ignore[arg-type]
            state=state,
            settings=settings,
            assigner=assigner,
        )
        server = ServerThread(app).start()
        servers.append(server)
        client = OpenAI(base_url=f"{server.url}/v1", api_key="not-used", max_retries=0)
        exps = {e.id: e for e in config.experiments}
        return Live(server.url, client, events, state, exps, app)

    yield start
    for server in servers:
        server.stop()


@dataclass
class Served:
    """``abllm serve`` in a process of its own (``url``; its output goes to ``log``)."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    store: str


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(yaml_text, *extra_args)`` runs ``abllm serve`` as users do; stopped after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(yaml_text: str, *extra: str) -> Served:
        cfg = tmp_path / f"exp{len(procs)}.yaml"
        cfg.write_text(yaml_text)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store = f"duckdb:///{tmp_path / 'events.duckdb'}"
        log = tmp_path / f"serve{len(procs)}.log"
        abllm = Path(sys.executable).parent / "abllm"
        args = [str(abllm), "serve", str(cfg), "--store", store, "--host", "127.0.0.1"]
        args += ["--port", str(port), "--spool-dir", str(tmp_path / "spool"), *extra]
        with log.open("wb") as out:
            proc = subprocess.Popen(args, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "abllm serve did not become healthy"
                time.sleep(0.1)
        return Served(url, proc, log, store)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
