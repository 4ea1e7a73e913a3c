"""Guardrails fail closed, answer degenerate cases exactly and control the family's error."""

from __future__ import annotations

import numpy as np
import pytest

from abllm.analysis.collect import MetricData
from abllm.analysis.compute import metric_results
from abllm.analysis.guardrails import evaluate_guardrails, family_size
from abllm.analysis.result import GuardrailStatus
from abllm.analysis.specs import builtin_specs, find_spec
from abllm.config import DecisionRule, Guardrail, loads_experiments
from abllm.errors import ConfigError
from abllm.stats import ProportionStats, RatioStats

RULE = DecisionRule()
ERROR_RATE = find_spec(builtin_specs(), "error_rate")
RATING = find_spec(builtin_specs(), "rating")


def _rate(units: int, errors_per_unit: np.ndarray | float, calls: int = 3) -> RatioStats:
    """``units`` units of ``calls`` calls each, the given share of them errored."""
    share = np.broadcast_to(np.asarray(errors_per_unit, float), (units,))
    errs = np.round(share * calls)
    return RatioStats.from_values(errs, np.full(units, float(calls)))


def _status(
    control: RatioStats, treatment: RatioStats, *guards: Guardrail, arms: int = 1
) -> list[GuardrailStatus]:
    assert ERROR_RATE is not None
    names = [f"t{i}" for i in range(arms)]
    data = MetricData(ERROR_RATE, {"control": control, **dict.fromkeys(names, treatment)})
    results = metric_results([data], "control", names, RULE, None, None)
    statuses, warnings = evaluate_guardrails(
        list(guards), {"error_rate": data}, results, "control", names, RULE
    )
    assert not warnings
    return statuses


def test_zero_error_control_against_all_errors_breaches_a_ratio_bound() -> None:
    (s,) = _status(_rate(200, 0.0), _rate(200, 1.0), Guardrail(metric="error_rate", max_ratio=1.1))
    assert s.breached and s.p_value < 1e-6


def test_zero_error_control_against_thirty_percent_breaches_a_ratio_bound() -> None:
    rng = np.random.default_rng(1)
    treatment = _rate(300, rng.random(300) < 0.3)
    (s,) = _status(_rate(300, 0.0), treatment, Guardrail(metric="error_rate", max_ratio=1.5))
    assert s.breached, s.reason


def test_all_errors_against_an_absolute_max_breaches() -> None:
    (s,) = _status(_rate(200, 0.0), _rate(200, 1.0), Guardrail(metric="error_rate", max=0.05))
    assert s.breached and s.p_value < 1e-6


def test_all_errors_against_a_max_they_may_still_satisfy_is_not_exact_zero() -> None:
    # 100 of 100 against max 0.99: the binomial score test under H0, not p = 0.
    (s,) = _status(_rate(100, 0.0), _rate(100, 1.0), Guardrail(metric="error_rate", max=0.99))
    assert not s.breached


def test_identical_zero_error_arms_hold() -> None:
    guards = (
        Guardrail(metric="error_rate", max_ratio=1.1),
        Guardrail(metric="error_rate", max=0.05),
    )
    for s in _status(_rate(200, 0.0), _rate(200, 0.0), *guards):
        assert not s.breached, s.reason


def test_a_test_that_cannot_be_computed_fails_closed() -> None:
    # No calls at all in the treatment's units: the error rate is undefined.
    empty = RatioStats(200.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    (s,) = _status(_rate(200, 0.0), empty, Guardrail(metric="error_rate", max=0.05))
    assert s.breached and "failing closed" in s.reason


def test_family_size_counts_bounds_times_treatments() -> None:
    guards = [
        Guardrail(metric="error_rate", max_ratio=1.5, max=0.05),
        Guardrail(metric="rating", min=3.0),
    ]
    assert family_size(guards, ["b", "c"]) == 6


def test_bonferroni_within_the_family_keeps_the_false_alarm_rate() -> None:
    """Five guardrail bounds × three arms on A/A data fire in ≤ alpha of experiments."""
    rng = np.random.default_rng(11)
    guards = [Guardrail(metric="error_rate", max_ratio=1.0 + 1e-9, alpha=0.05) for _ in range(5)]
    fired = 0
    runs = 300
    for _ in range(runs):
        arms = {v: _rate(400, rng.random(400) < 0.1) for v in ("control", "a", "b", "c")}
        assert ERROR_RATE is not None
        data = MetricData(ERROR_RATE, arms)
        results = metric_results([data], "control", ["a", "b", "c"], RULE, None, None)
        statuses, _ = evaluate_guardrails(
            guards, {"error_rate": data}, results, "control", ["a", "b", "c"], RULE
        )
        fired += any(s.breached for s in statuses)
    assert fired / runs <= 0.05


def test_proportion_guardrail_at_one_hundred_percent() -> None:
    spec = find_spec(builtin_specs(), "retried")
    assert spec is not None
    data = MetricData(spec, {"control": ProportionStats(300, 0), "t": ProportionStats(300, 300)})
    results = metric_results([data], "control", ["t"], RULE, None, None)
    (s,), _ = evaluate_guardrails(
        [Guardrail(metric="retried", max=0.05)], {"retried": data}, results, "control", ["t"], RULE
    )
    assert s.breached


@pytest.mark.parametrize("alpha", [0.5, 0.7, 0.0])
def test_validate_rejects_a_guardrail_alpha_analyze_would_refuse(alpha: float) -> None:
    yaml = f"""
experiments:
  - id: e
    variants:
      - {{id: c, control: true, llm: {{provider: sim, model: m}}}}
      - {{id: t, llm: {{provider: sim, model: m}}}}
    guardrails: [{{metric: error_rate, max: 0.05, alpha: {alpha}}}]
"""
    with pytest.raises(ConfigError, match=r"guardrails\[0\]\.alpha"):
        loads_experiments(yaml)


def test_end_to_end_zero_errors_vs_all_errors_pauses() -> None:
    """The issue's case through ``analyze``: it used to say CONTINUE."""
    from dataclasses import replace as dc_replace
    from datetime import UTC, datetime

    from abllm.analysis import Decision, analyze
    from abllm.events import open_store

    from .simdata import Arm, Sim, load, make_events

    yaml = """
experiments:
  - id: exp
    variants:
      - {id: control, control: true, llm: {provider: sim, model: m}}
      - {id: treatment, llm: {provider: sim, model: m}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
    guardrails: [{metric: error_rate, max_ratio: 1.1, min_units: 100}]
"""
    exp = loads_experiments(yaml).get("exp")
    clean = Arm(error=0.0)
    sim = Sim(units=600, seed=3, switch_share=0.0,
              arms={"control": clean, "treatment": dc_replace(clean, error=1.0)})  # fmt: skip
    store = load(open_store("duckdb:///:memory:"), make_events(sim))
    try:
        res = analyze(exp, store, now=datetime(2024, 3, 10, tzinfo=UTC))
    finally:
        store.close()
    assert res.recommendation.decision is Decision.PAUSE, res.recommendation.reason
    assert res.guardrails[0].breached
