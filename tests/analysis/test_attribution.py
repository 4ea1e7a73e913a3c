"""Which units and events count: first exposure, time windows, versions, errors, extra JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from abllm.analysis import analyze, result_to_json
from abllm.config import Experiment, loads_experiments
from abllm.events import Event, EventStore, open_store

T = datetime(2024, 5, 1, 12, tzinfo=UTC)

CONFIG = """
experiments:
  - id: att
    version: 2
    variants:
      - {id: a, control: true, llm: {provider: sim, model: m}}
      - {id: b, llm: {provider: sim, model: m}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
      - {name: score, type: mean, event: outcome, field: score, aggregation: sum}
      - {name: happy, type: proportion, event: outcome, field: happy}
"""


@pytest.fixture
def exp() -> Experiment:
    return loads_experiments(CONFIG).get("att")


@pytest.fixture
def store() -> Iterator[Callable[[Sequence[Event]], EventStore]]:
    opened: list[EventStore] = []

    def make(events: Sequence[Event]) -> EventStore:
        s = open_store("duckdb:///:memory:")
        s.append(list(events))
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def ev(kind: str, unit: str, minutes: float, variant: str | None = "a", **kw: Any) -> Event:
    version = kw.pop("version", 2)
    trace = kw.pop("trace", None)
    return Event(
        type=kind,
        experiment_id="att",
        experiment_version=version,
        variant_id=variant,
        unit_id=unit,
        trace_id=trace,
        ts=T + timedelta(minutes=minutes),
        metrics=kw,
    )


def test_first_exposure_wins_and_earlier_events_do_not_count(
    exp: Experiment, store: Callable[[Sequence[Event]], EventStore]
) -> None:
    s = store(
        [
            ev("feedback", "u1", -5, "b", rating=1),  # before any exposure: ignored
            ev("exposure", "u1", 0, "b"),
            ev("exposure", "u1", 10, "a"),  # later exposure to another arm: still b
            ev("feedback", "u1", 11, "a", rating=5),
            ev("exposure", "u2", 0, "a"),
            ev("feedback", "u2", 1, "a", rating=2),
            ev("feedback", "u2", 2, "a", rating=4, version=1),  # other version: ignored
            ev("feedback", "u3", 1, "a", rating=3),  # never exposed: ignored
        ]
    )
    res = analyze(exp, s, now=T + timedelta(hours=1))
    assert res.variants["b"].units == 1 and res.variants["a"].units == 1
    assert res.metrics["rating"].arms["b"].mean == 5.0
    assert res.metrics["rating"].arms["a"].mean == 2.0


def test_now_cuts_off_later_events(
    exp: Experiment, store: Callable[[Sequence[Event]], EventStore]
) -> None:
    s = store(
        [
            ev("exposure", "u1", 0, "a"),
            ev("feedback", "u1", 5, "a", rating=2),
            ev("feedback", "u1", 90, "a", rating=4),
            ev("exposure", "u2", 120, "b"),
        ]
    )
    early = analyze(exp, s, now=T + timedelta(minutes=30))
    assert early.metrics["rating"].arms["a"].mean == 2.0
    assert early.variants["b"].units == 0
    late = analyze(exp, s, now=T + timedelta(hours=3))
    assert late.metrics["rating"].arms["a"].mean == 3.0
    assert late.variants["b"].units == 1


def test_feedback_on_errored_calls_is_excluded_but_errors_are_counted(
    exp: Experiment, store: Callable[[Sequence[Event]], EventStore]
) -> None:
    s = store(
        [
            ev("exposure", "u1", 0, "b"),
            ev("llm_call", "u1", 1, "b", trace="t1", error=True, latency_ms=30000),
            ev("feedback", "u1", 2, "b", trace="t1", rating=1),  # about the failed call
            ev("llm_call", "u1", 3, "b", trace="t2", error=False, latency_ms=400),
            ev("feedback", "u1", 4, "b", trace="t2", rating=5),
        ]
    )
    res = analyze(exp, s, now=T + timedelta(hours=1))
    assert res.metrics["rating"].arms["b"].mean == 5.0
    assert res.metrics["error_rate"].arms["b"].mean == 0.5
    assert res.metrics["latency_ms"].arms["b"].mean == 400.0  # errored call left out


def test_extra_metrics_sum_and_bools(
    exp: Experiment, store: Callable[[Sequence[Event]], EventStore]
) -> None:
    s = store(
        [
            ev("exposure", "u1", 0, "a"),
            ev("outcome", "u1", 1, "a", score=2.5, happy=False),
            ev("outcome", "u1", 2, "a", score=1.5, happy=True),
            ev("exposure", "u2", 0, "a"),
            ev("outcome", "u2", 1, "a", score=1, happy=False),
        ]
    )
    res = analyze(exp, s, now=T + timedelta(hours=1))
    assert res.metrics["score"].arms["a"].mean == 2.5  # (4.0 + 1.0) / 2 units
    assert res.metrics["happy"].arms["a"].mean == 0.5  # u1 happy once, u2 never


def test_unknown_variant_is_reported_not_analysed(
    exp: Experiment, store: Callable[[Sequence[Event]], EventStore]
) -> None:
    s = store([ev("exposure", "u1", 0, "zzz"), ev("exposure", "u2", 0, "a")])
    res = analyze(exp, s, now=T + timedelta(hours=1))
    assert set(res.variants) == {"a", "b"}
    assert any("not in the config" in w for w in res.warnings)


def test_empty_store_still_renders(
    exp: Experiment, store: Callable[[Sequence[Event]], EventStore]
) -> None:
    res = analyze(exp, store([]), now=T)
    json.dumps(result_to_json(res), allow_nan=False)  # strict JSON: NaN became null
    assert res.variants["a"].units == 0
    assert res.recommendation.decision == "CONTINUE"
    assert res.metrics["rating"].comparisons["b"].error == "empty_arm"
    assert "error_rate" not in res.metrics  # built-ins only with data
