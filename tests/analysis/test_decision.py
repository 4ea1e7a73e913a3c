"""The recommendation: each verdict end to end on simulated data, and the rule's edge cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from abllm.analysis import Decision, ExperimentResult, analyze
from abllm.analysis.decide import DecisionInput, recommend
from abllm.analysis.result import ArmResult, Comparison, GuardrailStatus, MetricResult, SrmResult
from abllm.config import DecisionRule, loads_experiments
from abllm.events import open_store

from .simdata import Arm, Sim, load, make_events

NOW = datetime(2024, 3, 10, tzinfo=UTC)
CONFIG = """
experiments:
  - id: exp
    variants:
      - {{id: control, control: true, weight: 50, llm: {{provider: sim, model: m}}}}
      - {{id: treatment, weight: 50, llm: {{provider: sim, model: m}}}}
    metrics:
      - {{name: rating, type: mean, event: feedback, field: rating, role: primary}}
    decision: {decision}
    guardrails: {guardrails}
"""


def run(
    arms: dict[str, Arm], decision: str = "{}", guardrails: str = "[]", units: int = 1200
) -> ExperimentResult:
    exp = loads_experiments(CONFIG.format(decision=decision, guardrails=guardrails)).get("exp")
    table = make_events(Sim(units=units, arms=arms, seed=3, switch_share=0.0))
    store = load(open_store("duckdb:///:memory:"), table)
    try:
        return analyze(exp, store, now=NOW)
    finally:
        store.close()


CLEAN = Arm(error=0.0)


def test_ship_a_clear_winner() -> None:
    res = run(
        {"control": CLEAN, "treatment": replace(CLEAN, rating=4.2)},
        "{mde: 0.03, min_units_per_arm: 200}",
    )
    rec = res.recommendation
    assert rec.decision is Decision.SHIP and rec.variant == "treatment"
    assert "rating" in rec.reason and "%" in rec.reason


def test_keep_control_when_treatment_is_worse() -> None:
    res = run(
        {"control": CLEAN, "treatment": replace(CLEAN, rating=3.4)},
        "{mde: 0.03, min_units_per_arm: 200}",
    )
    assert res.recommendation.decision is Decision.KEEP_CONTROL
    assert res.recommendation.variant == "control"


def test_no_difference_once_the_planned_sample_is_reached() -> None:
    res = run({"control": CLEAN, "treatment": CLEAN}, "{mde: 0.1, min_units_per_arm: 100}")
    assert res.recommendation.decision is Decision.NO_DIFFERENCE, res.recommendation.reason


def test_continue_reports_units_still_needed() -> None:
    res = run({"control": CLEAN, "treatment": CLEAN}, "{mde: 0.01, min_units_per_arm: 100}")
    rec = res.recommendation
    assert rec.decision is Decision.CONTINUE
    assert rec.units_needed is not None and rec.units_needed > 1000
    assert f"{rec.units_needed:,}" in rec.reason


def test_continue_below_min_units_per_arm() -> None:
    res = run({"control": CLEAN, "treatment": CLEAN}, "{min_units_per_arm: 5000}")
    rec = res.recommendation
    assert rec.decision is Decision.CONTINUE
    assert rec.units_needed is not None and rec.units_needed > 4000


def test_invalid_on_sample_ratio_mismatch() -> None:
    res = run(
        {
            "control": replace(CLEAN, weight=0.6),
            "treatment": replace(CLEAN, weight=0.4, rating=4.3),
        },
        "{mde: 0.03, min_units_per_arm: 100}",
    )
    assert res.srm.flag and res.recommendation.decision is Decision.INVALID
    assert "sample ratio mismatch" in res.recommendation.reason


def test_pause_on_guardrail_breach() -> None:
    res = run(
        {"control": Arm(error=0.02), "treatment": Arm(error=0.2, rating=4.3)},
        "{mde: 0.03, min_units_per_arm: 100}",
        "[{metric: error_rate, max_ratio: 1.1, min_units: 200, action: pause}]",
    )
    rec = res.recommendation
    assert rec.decision is Decision.PAUSE and rec.variant == "treatment"
    (g,) = res.guardrails
    assert g.breached and g.p_value < 0.01 and g.bound == 1.1


def test_guardrail_waits_for_min_units() -> None:
    res = run(
        {"control": Arm(error=0.02), "treatment": Arm(error=0.2)},
        "{min_units_per_arm: 100}",
        "[{metric: error_rate, max: 0.05, min_units: 100000}]",
        units=400,
    )
    (g,) = res.guardrails
    assert not g.breached and "waiting" in g.reason


# -- the rule on hand-made results ---------------------------------------------------------


def _cmp(rel: float, p: float) -> Comparison:
    return Comparison(
        diff=rel, diff_ci=(rel - 0.1, rel + 0.1), p_value=p, p_value_sequential=p,
        rel_lift=rel, rel_ci=(rel - 0.1, rel + 0.1), chance_to_win=0.5,
        p_value_adjusted=p, significant=p < 0.05,
    )  # fmt: skip


def _metric(name: str, values: dict[str, float], cmps: dict[str, Comparison]) -> MetricResult:
    arms = {v: ArmResult(n=5000, mean=x, ci=(x, x)) for v, x in values.items()}
    return MetricResult(name, "mean", "primary", "increase", False, name, arms, cmps)


def _input(**kw: object) -> DecisionInput:
    primary = _metric("rating", {"control": 1.0, "t": 1.1}, {"t": _cmp(0.1, 0.001)})
    base: dict[str, object] = {
        "rule": DecisionRule(mde=0.05),
        "control": "control",
        "treatments": ["t"],
        "srm": SrmResult(0.5, False, {"control": 5000, "t": 5000}, {"control": 0.5, "t": 0.5}),
        "guardrails": [],
        "primary": primary,
        "metrics": {"rating": primary},
        "required_units": 3000,
    }
    base.update(kw)
    return DecisionInput(**base)  # type: ignore[arg-type]


def test_rule_ships_a_significant_winner_above_the_mde() -> None:
    assert recommend(_input()).decision is Decision.SHIP


def test_rule_blocks_a_winner_with_slow_p95() -> None:
    p95 = _metric("p95_latency_ms", {"control": 100.0, "t": 130.0}, {})
    rec = recommend(_input(metrics={"p95_latency_ms": p95}))
    assert rec.decision is Decision.KEEP_CONTROL and "p95 latency is 1.30x" in rec.reason


def test_rule_blocks_a_winner_with_more_errors() -> None:
    err = _metric("error_rate", {"control": 0.01, "t": 0.02}, {})
    rec = recommend(_input(metrics={"error_rate": err}))
    assert rec.decision is Decision.KEEP_CONTROL and "error rate is 2.00x" in rec.reason


def test_rule_does_not_use_the_mde_as_a_threshold_on_the_estimate() -> None:
    # Significant at +10 % with an MDE of 20 %: the MDE sized the test, it does not veto it.
    rec = recommend(_input(rule=DecisionRule(mde=0.2)))
    assert rec.decision is Decision.SHIP


def test_rule_max_duration_ends_an_inconclusive_test() -> None:
    flat = _metric("rating", {"control": 1.0, "t": 1.0}, {"t": _cmp(0.0, 0.6)})
    rule = DecisionRule(mde=0.05, max_duration_days=14)
    still = recommend(_input(rule=rule, primary=flat, required_units=9000, elapsed_days=3.0))
    assert still.decision is Decision.CONTINUE and still.units_needed == 4000
    done = recommend(_input(rule=rule, primary=flat, required_units=9000, elapsed_days=15.0))
    assert done.decision is Decision.NO_DIFFERENCE and "14-day" in done.reason


def test_rule_alert_only_guardrail_does_not_pause() -> None:
    alert = GuardrailStatus("error_rate", "t", True, "alert", 0.1, 0.05, 0.001, "high")
    assert recommend(_input(guardrails=[alert])).decision is Decision.SHIP
    pause = replace(alert, action="rollback")
    assert recommend(_input(guardrails=[pause])).decision is Decision.PAUSE


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_rule_respects_metric_direction(direction: str) -> None:
    primary = replace(
        _metric("latency", {"control": 1.0, "t": 0.9}, {"t": _cmp(-0.1, 0.001)}),
        direction=direction,
    )
    rec = recommend(_input(primary=primary, metrics={}))
    expected = Decision.SHIP if direction == "decrease" else Decision.KEEP_CONTROL
    assert rec.decision is expected
