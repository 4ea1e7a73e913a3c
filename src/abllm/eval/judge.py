"""LLM-as-judge: the judge prompt, its version hash, and reading the judge's score.

The judge sees the rubric and the score scale in a system message and the case as a JSON object
``{"input", "expected", "output", "scale", ...meta}`` in the user message, and must answer the
JSON schema named :data:`~abllm.providers.sim_grading.JUDGE_SCHEMA_NAME` (``{"score", "reason"}``)
— the structured-output form of the "single answer grading" judge of Zheng et al. 2023
(*Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena*). Any provider can judge, ``sim``
included (its grading is described in :mod:`abllm.providers.sim_grading`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from abllm.config import JudgeConfig
from abllm.eval.dataset import EvalRow
from abllm.providers import ChatRequest
from abllm.providers.sim_grading import JUDGE_SCHEMA_NAME

SYSTEM_TEMPLATE = (
    "You are an impartial judge. Grade the answer in the user's message against this rubric.\n"
    "Rubric: {rubric}\n"
    "Give an integer score from {lo} (worst) to {hi} (best) and one sentence of reasons, as "
    'JSON: {{"score": <integer>, "reason": "<text>"}}.'
)


def judge_schema(cfg: JudgeConfig) -> dict[str, Any]:
    """The ``response_format`` a judge call asks for."""
    lo, hi = cfg.scale
    return {
        "type": "json_schema",
        "json_schema": {
            "name": JUDGE_SCHEMA_NAME,
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "score": {"type": "integer", "minimum": lo, "maximum": hi},
                    "reason": {"type": "string"},
                },
                "required": ["score", "reason"],
                "additionalProperties": False,
            },
        },
    }


def system_prompt(cfg: JudgeConfig) -> str:
    """The judge's system message for this rubric and scale."""
    lo, hi = cfg.scale
    return SYSTEM_TEMPLATE.format(rubric=cfg.rubric, lo=lo, hi=hi)


def prompt_sha(cfg: JudgeConfig) -> str:
    """First 12 hex digits of SHA-256 over the judge's system prompt and schema.

    Recorded with every run beside ``prompt_version``, so two runs scored by different judge
    prompts are told apart even when someone forgot to bump the version.
    """
    text = system_prompt(cfg) + json.dumps(judge_schema(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def judge_request(cfg: JudgeConfig, row: EvalRow, output: str, trace_id: str) -> ChatRequest:
    """The provider request that asks the judge to score ``output`` for ``row``."""
    case: dict[str, Any] = {**row.meta, "input": row.input_text, "output": output}
    if row.expected is not None:
        case["expected"] = row.expected[0] if len(row.expected) == 1 else list(row.expected)
    case["scale"] = list(cfg.scale)
    llm = cfg.llm
    return ChatRequest(
        model=llm.model,
        messages=[
            {"role": "system", "content": system_prompt(cfg)},
            {"role": "user", "content": json.dumps(case, default=str)},
        ],
        temperature=llm.temperature if llm.temperature is not None else 0.0,
        top_p=llm.top_p,
        max_tokens=llm.max_tokens,
        params={**llm.params, "response_format": judge_schema(cfg)},
        unit_id=row.id,
        trace_id=trace_id,
    )


@dataclass(frozen=True)
class Verdict:
    """What the judge said: the score on its scale and its reason."""

    score: float
    reason: str


_FIRST_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdict(text: str | None, scale: tuple[int, int]) -> Verdict:
    """Read ``{"score", "reason"}`` from the judge's answer (a JSON object, possibly wrapped in
    prose or a code fence); ``ValueError`` when absent or off the scale."""
    match = _FIRST_OBJECT.search(text or "")
    if match is None:
        raise ValueError("the judge's answer holds no JSON object")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ValueError(f"the judge's answer is not valid JSON ({exc.msg})") from None
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise ValueError("the judge's answer has no numeric `score`")
    lo, hi = scale
    if not lo <= score <= hi:
        raise ValueError(f"the judge's score {score} is outside the scale [{lo}, {hi}]")
    return Verdict(score=float(score), reason=str(data.get("reason", "")))
