"""SRM against the mixture actually served: ramps, paused arms and holdback traffic stages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from abllm.analysis import Decision, ExperimentResult, analyze
from abllm.assign import assign
from abllm.assign.core import RuntimeState
from abllm.config import Experiment, loads_experiments
from abllm.events import Event, EventStore, open_store
from abllm.gateway.measure import exposure_event
from abllm.stats import srm

T = datetime(2024, 6, 1, tzinfo=UTC)
YAML = """
experiments:
  - id: ramp
    holdout: {holdout}
    variants:
      - {{id: a, control: true, weight: 80, llm: {{provider: sim, model: m}}}}
      - {{id: b, weight: 10, llm: {{provider: sim, model: m}}}}
      - {{id: c, weight: 10, llm: {{provider: sim, model: m}}}}
"""


def _exp(holdout: float = 0) -> Experiment:
    return loads_experiments(YAML.format(holdout=holdout)).get("ramp")


def _exposures(
    exp: Experiment, phases: Sequence[tuple[int, RuntimeState]], drop: str | None = None
) -> list[Event]:
    """Units assigned phase by phase with the real ``assign`` and the gateway's builder."""
    out: list[Event] = []
    i = 0
    for units, state in phases:
        for _ in range(units):
            unit = f"user-{i}"
            a = assign(exp, unit, state=state, now=T)
            i += 1
            if not (a.in_experiment or str(a.reason) == "holdout"):
                continue
            if drop is not None and a.variant_id == drop and i % 5 == 0:
                continue  # a logging bug loses a fifth of one arm's exposures
            ev = exposure_event(exp, a.variant_id, unit, f"t{i}", str(a.reason),
                                a.weights, a.probability)  # fmt: skip
            out.append(ev.model_copy(update={"ts": T + timedelta(seconds=i), "unit_id": unit}))
    return out


def _analyze(
    exp: Experiment, events: list[Event], store: EventStore | None = None
) -> ExperimentResult:
    own = store is None
    store = store or open_store("duckdb:///:memory:")
    try:
        store.append(events)
        return analyze(exp, store, now=T + timedelta(days=2))
    finally:
        if own:
            store.close()


RAMP = [
    (6000, RuntimeState(weights={"a": 80, "b": 10, "c": 10})),
    (6000, RuntimeState(weights={"a": 60, "b": 20, "c": 20})),
]


def test_an_honest_ramp_is_not_a_mismatch() -> None:
    exp = _exp()
    res = _analyze(exp, _exposures(exp, RAMP))
    assert not res.srm.flag and res.srm.chi2_p_value > 0.001, res.srm
    assert res.srm.unrecorded_units == 0
    assert res.srm.expected["a"] == pytest.approx(0.70, abs=0.01)
    # The old check (cumulative counts against one weight vector) calls this broken.
    assert srm(list(res.srm.observed.values()), [0.8, 0.1, 0.1]).p_value < 1e-50
    assert res.recommendation.decision is not Decision.INVALID


def test_a_guardrail_pausing_an_arm_is_not_a_mismatch() -> None:
    exp = _exp()
    phases = [(5000, RuntimeState()), (5000, RuntimeState(paused_variants=frozenset({"c"})))]
    res = _analyze(exp, _exposures(exp, phases))
    assert not res.srm.flag, res.srm
    assert res.recommendation.decision is not Decision.INVALID


def test_holdback_with_a_traffic_stage_is_not_a_mismatch() -> None:
    exp = _exp(holdout=10)
    phases = [(4000, RuntimeState(traffic=20)), (4000, RuntimeState(traffic=60))]
    res = _analyze(exp, _exposures(exp, phases))
    assert res.holdback is not None
    assert not res.holdback.srm.flag and res.holdback.srm.p_value > 0.01, res.holdback.srm
    assert not res.srm.flag


def test_a_lost_share_of_one_arm_is_flagged_for_that_arm() -> None:
    exp = _exp()
    res = _analyze(exp, _exposures(exp, RAMP, drop="c"))
    assert res.srm.flag and "c" in res.srm.arms and "b" not in res.srm.arms, res.srm


@pytest.fixture
def pg_store(pg_url: str, unique_name: str) -> Iterator[EventStore]:
    store = open_store(f"{pg_url}?schema={unique_name}")
    yield store
    store.query(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')
    store.close()


@pytest.mark.postgres
def test_postgres_sums_the_same_mixture(pg_store: EventStore) -> None:
    exp = _exp()
    events = _exposures(exp, RAMP)
    want = _analyze(exp, events).srm
    got = _analyze(exp, events, pg_store).srm
    assert got.expected == pytest.approx(want.expected, rel=1e-9)
    assert got.p_value == pytest.approx(want.p_value, rel=1e-9) and not got.flag


@pytest.mark.clickhouse
def test_clickhouse_sums_the_same_mixture(chdb_available: None, tmp_path: Path) -> None:
    exp = _exp()
    events = _exposures(exp, RAMP)
    want = _analyze(exp, events).srm
    store = open_store(f"chdb://{tmp_path}/ch")
    try:
        got = _analyze(exp, events, store).srm
    finally:
        store.close()
    assert got.expected == pytest.approx(want.expected, rel=1e-9)
    assert got.p_value == pytest.approx(want.p_value, rel=1e-9) and not got.flag
