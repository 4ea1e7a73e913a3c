"""Holdback report: held-back units (exposure without a variant) vs everyone exposed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from abllm.analysis import analyze, result_to_json
from abllm.config import loads_experiments
from abllm.events import Event, open_store

T = datetime(2024, 5, 1, 12, tzinfo=UTC)
CONFIG = """
experiments:
  - id: hb
    holdout: 10
    variants:
      - {id: a, control: true, llm: {provider: sim, model: m}}
      - {id: b, llm: {provider: sim, model: m}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, role: primary}
"""


def test_holdback_vs_exposed_matches_welch_on_units() -> None:
    exp = loads_experiments(CONFIG).get("hb")
    rng = np.random.default_rng(3)
    events: list[Event] = []
    groups: dict[str, list[float]] = {"holdback": [], "exposed": []}
    for i in range(600):
        unit = f"u{i}"
        held = i % 10 == 0
        variant = None if held else ("a" if i % 2 else "b")
        attrs = {"reason": "holdout"} if held else {}
        events.append(
            Event(
                type="exposure",
                experiment_id="hb",
                variant_id=variant,
                unit_id=unit,
                ts=T + timedelta(seconds=i),
                attrs=attrs,
            )
        )
        ratings = rng.normal(3.5 if held else 3.8, 1.0, size=2)
        for r in ratings:
            events.append(
                Event(
                    type="feedback",
                    experiment_id="hb",
                    variant_id=variant,
                    unit_id=unit,
                    ts=T + timedelta(seconds=i, minutes=1),
                    metrics={"rating": float(r)},
                )
            )
        groups["holdback" if held else "exposed"].append(float(ratings.mean()))
    store = open_store("duckdb:///:memory:")
    store.append(events)
    result = analyze(exp, store, now=T + timedelta(days=1))
    store.close()

    # The experiment itself ignores held-back units.
    assert result.variants["a"].units + result.variants["b"].units == 540
    held = result.holdback
    assert held is not None
    assert (held.variants["holdback"].units, held.variants["exposed"].units) == (60, 540)
    assert not held.srm.flag
    cmp = held.metrics["rating"].comparisons["exposed"]
    ref = stats.ttest_ind(groups["exposed"], groups["holdback"], equal_var=False)
    assert cmp.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    doc = result_to_json(result)["holdback"]
    assert isinstance(doc, dict) and doc["control"] == "holdback"
    assert set(doc["variants"]) == {"holdback", "exposed"}


def test_no_holdback_without_holdout() -> None:
    exp = loads_experiments(CONFIG.replace("holdout: 10", "holdout: 0")).get("hb")
    store = open_store("duckdb:///:memory:")
    assert analyze(exp, store, now=T).holdback is None
    assert result_to_json(analyze(exp, store, now=T))["holdback"] is None
    store.close()
