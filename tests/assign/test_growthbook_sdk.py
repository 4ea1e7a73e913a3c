"""Migration guarantee: every unit gets the same arm as in GrowthBook's own Python SDK."""

from __future__ import annotations

import pytest
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from abllm.assign import assign
from abllm.config import Experiment


@pytest.mark.parametrize(
    ("weights", "traffic"), [([50, 50], 100), ([80, 10, 10], 100), ([20, 30, 50], 40)]
)
def test_same_arm_as_growthbook_sdk(weights: list[int], traffic: int) -> None:
    exp = Experiment.model_validate(
        {
            "id": "exp_migrated",
            "traffic": traffic,
            "variants": [
                {"id": f"v{i}", "control": i == 0, "weight": w, "llm": {"model": "m"}}
                for i, w in enumerate(weights)
            ],
        }
    )
    gb = GrowthBook(attributes={"id": ""})
    gb_exp = GBExperiment(
        key=exp.id,
        variations=[v.id for v in exp.variants],
        weights=exp.weights,
        coverage=traffic / 100,
        hashVersion=2,
    )
    for i in range(5000):
        unit = f"user-{i}"
        gb.set_attributes({"id": unit})
        result = gb.run(gb_exp)
        ours = assign(exp, unit)
        assert ours.variant_id == (result.value if result.inExperiment else None), unit
        if result.inExperiment:
            assert ours.bucket == result.bucket
