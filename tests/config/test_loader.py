"""Config loading: the documented shape is accepted and every bad config names file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from abllm.config import load_experiments, loads_experiments
from abllm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
experiments:
  - id: exp_summarize_v2
    traffic: 100            # percent of eligible units in the experiment (0-100, decimals ok)
    seed: exp_summarize_v2  # optional, defaults to id
    variants:
      - id: control
        control: true
        weight: 50
        llm: {provider: sim, model: sim-small, system_prompt: "Summarize the text concisely.",
              temperature: 0.3, max_tokens: 500}
      - id: treatment
        weight: 50
        llm: {provider: sim, model: sim-small, prompt_version: v2, temperature: 0.2,
              system_prompt: "Summarize in 2-3 sentences. Focus on the key takeaway."}
"""


def test_minimal_shape_is_accepted_as_written() -> None:
    exp = loads_experiments(MINIMAL).get("exp_summarize_v2")
    assert exp.traffic == 100
    assert exp.hash_seed == "exp_summarize_v2"
    assert exp.control.id == "control"
    assert exp.variant("treatment").llm.prompt_version == "v2"
    assert exp.weights == [0.5, 0.5]
    assert exp.status == "running"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_load(path: Path) -> None:
    assert load_experiments(path).experiments


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_experiments(text, "bad.yaml")
    return info.value.problems


def _mutate(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _mutate("weight: 50", "weight: 0").replace("weight: 50", "weight: 0"),
            "bad.yaml:6: experiment exp_summarize_v2: variants: variant weights sum to 0",
        ),
        (
            _mutate(
                "        weight: 50\n        llm: {provider: sim, model: sim-small, prompt",
                "        control: true\n        weight: 50\n"
                "        llm: {provider: sim, model: sim-small, prompt",
            ),
            "exactly one variant must be the control, got 2",
        ),
        (_mutate("        control: true\n", ""), "no variant has `control: true`"),
        (_mutate("id: treatment", "id: control"), "duplicate variant ids: control"),
        (
            _mutate("traffic: 100", "traffic: 120"),
            "bad.yaml:3: experiment exp_summarize_v2: traffic: Input should be less than or equal",
        ),
        (
            _mutate("provider: sim, model: sim-small, prompt", "provider: gpt, model: x, prompt"),
            "bad.yaml:13: experiment exp_summarize_v2: variants[1].llm.provider: Input should be "
            "'sim', 'openai' or 'anthropic'",
        ),
        (
            MINIMAL + MINIMAL.replace("experiments:\n", ""),
            "bad.yaml:15: experiment exp_summarize_v2: id: duplicate experiment id",
        ),
        (
            _mutate("seed: exp_summarize_v2", "seeed: x"),
            "bad.yaml:4: experiment exp_summarize_v2: seeed: Extra inputs are not permitted",
        ),
        ("experiments:\n  - id: [unclosed\n", "bad.yaml:3: invalid YAML"),
        ("experiments: {a: 1}\n", "bad.yaml: experiments: must be a list"),
        ("- 1\n", "bad.yaml: top level must be a mapping with the key `experiments`"),
    ],
    ids=[
        "weights-zero",
        "two-controls",
        "no-control",
        "duplicate-variant",
        "traffic-120",
        "unknown-provider",
        "duplicate-experiment",
        "unknown-field",
        "bad-yaml",
        "not-a-list",
        "top-level",
    ],
)
def test_config_errors_name_file_experiment_and_field(text: str, expected: str) -> None:
    problems = _errors(text)
    assert any(expected in p for p in problems), problems


def test_all_problems_reported_at_once() -> None:
    text = _mutate("traffic: 100", "traffic: 120").replace("temperature: 0.3", "temperature: 9")
    problems = _errors(text)
    assert len(problems) == 2
    assert any("variants[0].llm.temperature" in p for p in problems)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_experiments(tmp_path / "nope.yaml")


def test_full_shape_fields() -> None:
    text = (
        MINIMAL
        + """\
    name: Summaries
    hypothesis: shorter is better
    owner: me
    version: 2
    status: paused
    start: 2026-01-01T00:00:00Z
    end: 2026-02-01T00:00:00Z
    unit: org
    holdout: 5
    layer: {name: summaries, range: [0, 0.5]}
    targeting:
      - {attribute: plan, op: eq, value: pro}
      - {attribute: country, op: in, value: [US, CA]}
      - {attribute: country, op: not_in, value: [XX]}
      - {attribute: age, op: gt, value: 18}
      - {attribute: age, op: lt, value: 99}
      - {attribute: email, op: regex, value: "@example\\\\.com$"}
    forced: {qa-user: treatment}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, aggregation: mean,
         role: primary, direction: increase}
      - {name: p95, type: quantile, quantile: 0.95, event: llm_call, field: latency_ms}
    decision: {alpha: 0.01, power: 0.9, mde: 0.1, min_units_per_arm: 100, max_duration_days: 7}
"""
    )
    exp = loads_experiments(text).experiments[0]
    assert exp.layer is not None and exp.layer.range == (0.0, 0.5)
    assert exp.decision.alpha == 0.01
    assert len(exp.targeting) == 6
    assert exp.forced == {"qa-user": "treatment"}


def test_direction_defaults_to_decrease_for_cost_like_fields() -> None:
    from abllm.config import Metric

    p95 = Metric(name="p95", type="quantile", quantile=0.95, event="llm_call", field="latency_ms")
    assert p95.direction == "decrease"
    assert Metric(name="rating", field="rating").direction == "increase"
    assert Metric(name="odd", field="latency_ms", direction="increase").direction == "increase"
