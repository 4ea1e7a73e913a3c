"""Fixtures of the dashboard tests: a config, events in an in-memory DuckDB store, and a small
FastAPI app with only the dashboard router and a plain ``app.state.abllm``."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from abllm.config import ExperimentFile, loads_experiments
from abllm.dashboard import build_dashboard_router
from abllm.events import Event, EventStore, open_store

CONFIG_YAML = """
experiments:
  - id: tone
    name: "Support tone <b>v2</b> & friends"
    hypothesis: "A warmer prompt raises ratings <script>alert('h')</script>"
    owner: team-support
    variants:
      - {id: control, control: true, weight: 2, llm: {provider: sim, model: m}}
      - {id: warm, llm: {provider: sim, model: m}}
      - {id: turbo, llm: {provider: sim, model: m2}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
      - {name: thumbs_up, type: proportion, event: feedback, field: thumbs_up}
      - {name: latency_ms, type: ratio, event: llm_call, field: latency_ms, role: guardrail,
         direction: decrease}
    decision: {min_units_per_arm: 50}
    guardrails:
      - {metric: error_rate, max: 0.5, min_units: 10}
    rollout:
      stages:
        - {name: canary, weights: {control: 80, warm: 10, turbo: 10}}
        - {name: expand, weights: {control: 60, warm: 20, turbo: 20}, after_days: 7}
  - id: empty_exp
    variants:
      - {id: a, control: true, llm: {provider: sim, model: m}}
      - {id: b, llm: {provider: sim, model: m}}
"""


@dataclass(frozen=True)
class Arm:
    rating: float
    latency: float
    thumbs: float


ARMS = {
    "control": Arm(3.6, 900.0, 0.55),
    "warm": Arm(4.3, 950.0, 0.75),
    "turbo": Arm(3.0, 600.0, 0.45),
}


def make_events(
    experiment_id: str = "tone", units: int = 480, days: int = 3, seed: int = 3
) -> list[Event]:
    """Exposures, calls and feedback over the last ``days`` days (weights 2:1:1)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start = now - timedelta(days=days - 1, hours=now.hour, minutes=now.minute)
    span = (now - start).total_seconds() - 60
    names = ["control", "control", "warm", "turbo"]
    events: list[Event] = []
    for i in range(units):
        variant = names[i % 4]
        arm = ARMS[variant]
        unit = f"u{i:05d}"
        t = start + timedelta(seconds=span * i / units)
        base = {"experiment_id": experiment_id, "unit_id": unit, "variant_id": variant}
        events.append(Event(type="exposure", ts=t, **base))
        for k in range(2):
            trace = f"{unit}-{k}"
            tc = t + timedelta(seconds=1 + k)
            lat = rng.lognormvariate(0, 0.3) * arm.latency
            events.append(
                Event(
                    type="llm_call",
                    ts=tc,
                    trace_id=trace,
                    metrics={"latency_ms": lat, "error": rng.random() < 0.02, "cost_usd": 0.002},
                    **base,
                )
            )
            rating = min(5.0, max(1.0, round(rng.gauss(arm.rating, 0.9))))
            events.append(
                Event(
                    type="feedback",
                    ts=tc + timedelta(milliseconds=500),
                    trace_id=trace,
                    metrics={"rating": rating, "thumbs_up": rng.random() < arm.thumbs},
                    **base,
                )
            )
    return events


@pytest.fixture(scope="session")
def config() -> ExperimentFile:
    return loads_experiments(CONFIG_YAML)


@pytest.fixture(scope="session")
def events() -> list[Event]:
    return make_events()


@pytest.fixture
def store(events: list[Event]) -> Iterator[EventStore]:
    """An in-memory DuckDB store holding the ``tone`` experiment's events."""
    s = open_store("duckdb:///:memory:")
    s.append(events)
    yield s
    s.close()


@dataclass
class FakeGateway:
    config: ExperimentFile
    state: Any = None


@dataclass
class FakeAppState:
    """The fields of ``abllm.server.AppState`` the dashboard reads."""

    gateway: FakeGateway
    store: EventStore | None = None
    pipeline: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


Client = Callable[..., TestClient]


@pytest.fixture
def client() -> Iterator[Client]:
    """Factory: a TestClient over an app with the dashboard router and the given state."""
    made: list[TestClient] = []

    def make(
        config: ExperimentFile,
        store: EventStore | None = None,
        state: Any = None,
        **extra: Any,
    ) -> TestClient:
        app = FastAPI()
        app.include_router(build_dashboard_router(cache_ttl_s=0.0))
        app.state.abllm = FakeAppState(FakeGateway(config, state), store)
        for k, v in extra.items():
            setattr(app.state.abllm, k, v)
        c = TestClient(app)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
