"""Shared pieces for the SDK tests: an experiment file, a live server, a flaky pipeline."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from abllm.config import ExperimentFile, loads_experiments
from abllm.errors import Backpressure
from abllm.events import Event, EventPipeline, EventStore, open_store
from abllm.gateway import InMemoryStateView
from abllm.server import ServerThread, create_app

CONFIG = """
experiments:
  - id: exp_tone
    aliases: [tone]
    holdout: 10
    variants:
      - id: control
        control: true
        llm: {provider: openai, model: gpt-4o-mini, system_prompt: "Be concise.",
              temperature: 0.2}
      - id: warm
        llm: {provider: openai, model: gpt-4o, system_prompt: "Be warm and friendly.",
              temperature: 0.9, max_tokens: 64, params: {seed: 7}}
  - id: exp_target
    targeting:
      - {attribute: country, op: in, value: [FR, DE]}
    variants:
      - id: control
        control: true
        llm: {model: gpt-4o-mini}
      - id: short
        llm: {model: gpt-4o-mini, system_prompt: "Answer in one line."}
"""


def load_upstream() -> Any:
    """tests/gateway/upstream.py (the fake OpenAI upstream), loaded by path: under pytest's
    importlib mode the test folders are not importable packages of one another."""
    name = "abllm_tests_gateway_upstream"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "gateway" / "upstream.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def config() -> ExperimentFile:
    return loads_experiments(CONFIG)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_text(CONFIG)
    return path


def wait_for(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


class FlakyPipeline:
    """A real pipeline whose ``submit`` answers back-pressure for the first ``failures`` calls."""

    def __init__(self, inner: EventPipeline, failures: int = 0, retry_after: float = 0.2) -> None:
        self.inner = inner
        self.store = inner.store
        self.failures = failures
        self.retry_after = retry_after
        self.calls = 0

    def emit(self, event: Event) -> None:
        self.inner.emit(event)

    async def submit(self, events: list[Event]) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise Backpressure("spool full", retry_after=self.retry_after)
        await self.inner.submit(events)

    def flush(self, timeout: float | None = None) -> None:
        self.inner.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self.inner.close(timeout)


@dataclass
class Live:
    """A running abllm server with its store, state view and flaky pipeline."""

    url: str
    store: EventStore
    state: InMemoryStateView
    pipeline: FlakyPipeline
    thread: ServerThread
    app: Any

    def count(self, kind: str | None = None) -> int:
        sql = "SELECT count(*) FROM abllm_events"
        rows = self.store.query(sql + (" WHERE type = ?" if kind else ""), [kind] if kind else [])
        return int(rows[0][0])


def start_server(config: ExperimentFile, tmp: Path, port: int = 0) -> Live:
    store = open_store(f"duckdb:///{tmp / 'server.duckdb'}")
    pipeline = FlakyPipeline(EventPipeline(store, spool_dir=tmp / f"spool-{time.monotonic_ns()}"))
    state = InMemoryStateView()
    app = create_app(config, pipeline=pipeline, state=state)  # type: ignore[arg-type]
    thread = ServerThread(app, port=port).start()
    return Live(thread.url, store, state, pipeline, thread, app)


def stop_server(live: Live) -> None:
    live.thread.stop()
    live.pipeline.close()
    live.store.close()


@pytest.fixture
def live(config: ExperimentFile, tmp_path: Path) -> Iterator[Live]:
    server = start_server(config, tmp_path)
    yield server
    stop_server(server)
