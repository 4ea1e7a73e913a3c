"""The ``eval`` block of an experiment: how ``abllm eval`` scores an offline replay."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from abllm.config.llm import LLMConfig

#: Every scorer ``abllm eval`` knows, in report order (docs/eval.md describes each).
ScorerName = Literal[
    "exact",
    "contains",
    "regex",
    "json_schema",
    "length",
    "latency_ms",
    "cost_usd",
    "refusal",
    "judge",
]
SCORER_NAMES: tuple[str, ...] = get_args(ScorerName)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JudgeConfig(_Strict):
    """An LLM-as-judge: a rubric, a score scale and the LLM that applies them.

    ``prompt_version`` names the judge prompt (rubric + template) so a run records which judge
    scored it; changing the rubric without bumping it is visible too, as the run stores a hash
    of the full prompt.
    """

    llm: LLMConfig
    rubric: str = Field(min_length=1, description="what a good answer is, shown to the judge")
    scale: tuple[int, int] = Field(default=(1, 5), description="lowest and highest score")
    prompt_version: str = Field(default="1", min_length=1)

    @field_validator("scale")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] >= value[1]:
            raise ValueError("scale: the lowest score must be below the highest, e.g. [1, 5]")
        return value


class EvalSchedule(_Strict):
    """A replay the rollout controller runs every ``every_s`` seconds, alerting on drift.

    Each run is compared with the experiment's previous run of the same dataset; a variant
    whose mean score moved by more than ``max_drift[scorer]`` (absolute, either way) raises an
    ``eval_drift`` alert through the controller's alert hooks.
    """

    every_s: float = Field(ge=1, description="seconds between scheduled runs")
    dataset: str = Field(min_length=1, description="JSONL dataset path (relative to the cwd)")
    max_drift: dict[ScorerName, float] = Field(min_length=1)
    repeat: int = Field(default=1, ge=1)
    concurrency: int = Field(default=8, ge=1)

    @field_validator("max_drift")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for name, bound in value.items():
            if bound < 0:
                raise ValueError(f"max_drift.{name}: must be 0 or more, got {bound}")
        return value


class EvalConfig(_Strict):
    """Offline replay settings (``abllm eval``); every field is optional.

    ``scorers`` picks the default scorers (else every scorer that applies runs); ``regex`` is the
    pattern the ``regex`` scorer searches for; ``refusal_patterns`` add to the built-in refusal
    phrases; ``case_sensitive`` applies to ``exact`` and ``contains``.
    """

    scorers: list[ScorerName] | None = Field(default=None, min_length=1)
    regex: str | None = None
    case_sensitive: bool = False
    refusal_patterns: list[str] = Field(default_factory=list)
    judge: JudgeConfig | None = None
    schedule: EvalSchedule | None = None

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        for where, pattern in [
            ("regex", self.regex),
            *((f"refusal_patterns[{i}]", p) for i, p in enumerate(self.refusal_patterns)),
        ]:
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{where}: not a valid regular expression ({exc})") from None
        chosen = set(self.scorers or ()) | set(self.schedule.max_drift if self.schedule else ())
        if "regex" in chosen and self.regex is None:
            raise ValueError("scorer `regex` needs the pattern in `eval.regex`")
        if "judge" in chosen and self.judge is None:
            raise ValueError("scorer `judge` needs a `eval.judge` block (llm and rubric)")
        return self
