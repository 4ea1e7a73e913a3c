"""Pure eval cores: judge verdicts, scorer planning, sim grounding and grading."""

from __future__ import annotations

import json

import pytest

from abllm.config import loads_experiments
from abllm.errors import ConfigError, ValidationError
from abllm.eval.dataset import EvalRow, parse_row
from abllm.eval.judge import judge_request, parse_verdict, prompt_sha
from abllm.eval.scorers import Answer, Scorers, plan_scorers
from abllm.providers.sim_grading import grade, ground

from .conftest import CONFIG


def experiment(extra: str = "") -> object:
    return loads_experiments(CONFIG.replace("QBASE", "2") + extra).experiments[0]


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ('{"score": 4, "reason": "ok"}', 4.0),
        ('Sure:\n```json\n{"score": 2, "reason": "meh"}\n```', 2.0),
    ],
)
def test_parse_verdict(text: str, score: float) -> None:
    assert parse_verdict(text, (1, 5)).score == score


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no json here", "no JSON object"),
        ('{"score": 9}', "outside the scale"),
        ('{"reason": "x"}', "no numeric `score`"),
        ('{"score": true}', "no numeric `score`"),
    ],
)
def test_bad_verdicts(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_verdict(text, (1, 5))


def test_judge_prompt_is_versioned_by_hash() -> None:
    exp = experiment()
    judge = exp.eval.judge  # type: ignore[attr-defined]
    changed = judge.model_copy(update={"rubric": "Another rubric."})
    assert prompt_sha(judge) != prompt_sha(changed)
    row = EvalRow("r1", [{"role": "user", "content": "hello there"}], ("there",))
    req = judge_request(judge, row, "an answer", "t")
    case = json.loads(req.messages[-1]["content"])
    assert case == {
        "input": "hello there",
        "output": "an answer",
        "expected": "there",
        "scale": [1, 10],
    }
    assert req.params["response_format"]["json_schema"]["name"] == "abllm_judge"


def test_sim_judge_reads_the_answer() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "abllm_judge", "schema": {}}}

    def ask(output: str) -> int:
        case = {"input": "red apples", "output": output, "scale": [1, 5]}
        text = grade([{"role": "user", "content": json.dumps(case)}], {"response_format": fmt})
        assert text is not None
        return int(json.loads(text)["score"])

    assert ask("red apples red") == 5
    assert ask("blue sky") == 1
    assert ask("red sky") == 3
    assert grade([{"role": "user", "content": "hi"}], {}) is None


def test_sim_grounding_rises_with_quality() -> None:
    words = ["w"] * 200
    low = ground(words, "alpha beta", 1.0, seed=1)
    high = ground(words, "alpha beta", 5.0, seed=1)
    assert low == words and all(w in ("alpha", "beta") for w in high)


def test_plan_scorers_defaults_and_errors() -> None:
    exp = experiment()
    with_expected = [EvalRow("a", [{"role": "user", "content": "q"}], ("x",))]
    without = [EvalRow("a", [{"role": "user", "content": "q"}])]
    assert plan_scorers(exp, with_expected) == [  # type: ignore[arg-type]
        "exact",
        "contains",
        "regex",
        "length",
        "latency_ms",
        "cost_usd",
        "refusal",
        "judge",
    ]
    assert "exact" not in plan_scorers(exp, without)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="no dataset row has `expected`"):
        plan_scorers(exp, without, ["exact"])  # type: ignore[arg-type]


def test_scorers_on_an_answer() -> None:
    schema = "    output_schema: {type: object, required: [a]}\n"
    exp = experiment(schema)
    s = Scorers(exp)  # type: ignore[arg-type]
    row = EvalRow("a", [{"role": "user", "content": "q"}], ("Paris",))
    answer = Answer('{"a": 1}', 12.0, None)
    assert s.score("json_schema", row, "base", answer) == 1.0
    assert s.score("json_schema", row, "base", Answer("{}", 1.0, None)) == 0.0
    assert s.score("json_schema", row, "base", Answer("not json", 1.0, None)) == 0.0
    assert s.score("exact", row, "base", Answer(" paris ", 1.0, None)) == 1.0
    assert s.score("contains", row, "base", Answer("It is PARIS.", 1.0, None)) == 1.0
    assert s.score("length", row, "base", answer) == 8.0
    assert s.score("latency_ms", row, "base", answer) == 12.0
    assert s.score("cost_usd", row, "base", answer) is None
    assert s.score("regex", row, "base", Answer("{", 1.0, None)) == 0.0
    assert s.score("exact", row, "base", Answer(None, None, None)) is None


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("    eval: {regex: '('}\n", "eval.regex: not a valid regular expression"),
        ("    eval: {scorers: [regex]}\n", "scorer `regex` needs the pattern"),
        ("    eval: {scorers: [judge]}\n", "scorer `judge` needs a `eval.judge` block"),
        ("    eval: {schedule: {every_s: 60, dataset: d.jsonl, max_drift: {regex: 1}}}\n", "regex"),
        ("    eval: {nope: 1}\n", "nope"),
        ("    eval: {judge: {llm: {model: m}, rubric: r, scale: [5, 1]}}\n", "scale"),
    ],
)
def test_eval_config_is_validated(block: str, message: str) -> None:
    text = CONFIG.replace("QBASE", "2").split("    eval:")[0] + block
    with pytest.raises(ConfigError) as info:
        loads_experiments(text)
    assert message in str(info.value)


def test_parse_row_keeps_meta() -> None:
    row = parse_row('{"id": 7, "input": "q", "topic": "x"}', "f", 1)
    assert row.id == "7" and row.meta == {"topic": "x"} and row.expected is None
