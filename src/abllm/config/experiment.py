"""The experiment model: variants, audience, metrics, decision rule and rollout plan."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from abllm.config.bandit import BanditConfig
from abllm.config.eval import EvalConfig
from abllm.config.llm import LLMConfig
from abllm.config.metrics import DecisionRule, Metric
from abllm.config.rollout import Guardrail, RolloutPlan
from abllm.config.targeting import Layer, TargetingRule

Status = Literal["draft", "running", "paused", "stopped", "completed"]
UnitType = Literal["user", "org", "session"]
_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"


class Variant(BaseModel):
    """One arm: its share of traffic and the LLM config it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=_ID)
    name: str | None = None
    description: str | None = None
    control: bool = False
    weight: float = Field(default=1.0, ge=0)
    llm: LLMConfig


class Experiment(BaseModel):
    """An experiment as written in YAML: the pre-registered definition.

    Runtime state (kill switch, paused arms, rollout stage) lives apart from this definition, in
    the state store; changing ``variants`` of a live experiment needs a new ``version``.
    ``traffic`` is GrowthBook's coverage: raising it only adds units.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=_ID)
    name: str | None = None
    hypothesis: str | None = None
    owner: str | None = None
    version: int = Field(default=1, ge=1, le=2**31 - 1)  # stores keep a 32-bit column
    status: Status = "running"
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    unit: UnitType = "user"
    fallback_unit: UnitType | None = Field(
        default=None, description="attribute hashed when the unit id is absent (anonymous users)"
    )
    traffic: float = Field(default=100.0, ge=0, le=100)
    seed: str | None = None
    holdout: float = Field(default=0.0, ge=0, lt=100, description="percent kept on control")
    holdout_seed: str | None = None
    layer: Layer | None = None
    targeting: list[TargetingRule] = Field(default_factory=list)
    forced: dict[str, str] = Field(default_factory=dict, description="unit id -> variant id")
    variants: list[Variant] = Field(min_length=1)
    metrics: list[Metric] = Field(default_factory=list)
    decision: DecisionRule = Field(default_factory=DecisionRule)
    guardrails: list[Guardrail] = Field(default_factory=list)
    rollout: RolloutPlan | None = None
    bandit: BanditConfig | None = None
    aliases: list[str] = Field(default_factory=list, description="gateway model names routed here")
    timeout_s: float = Field(default=30.0, gt=0, description="budget for one gateway request")
    max_retries: int = Field(default=2, ge=0, le=10)
    fallback_to_control: bool = True
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema the answer must satisfy, else fallback"
    )
    log_payloads: bool = Field(default=False, description="store redacted prompts and answers")
    eval: EvalConfig | None = Field(default=None, description="offline replay (abllm eval)")

    @model_validator(mode="after")
    def _check_variants(self) -> Experiment:
        ids = [v.id for v in self.variants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"variants: duplicate variant ids: {', '.join(dupes)}")
        controls = [v.id for v in self.variants if v.control]
        if len(controls) > 1:
            raise ValueError(
                f"variants: exactly one variant must be the control, got {len(controls)}: "
                + ", ".join(controls)
            )
        if not controls and len(self.variants) > 1:
            raise ValueError(
                "variants: no variant has `control: true`; mark exactly one as the control"
            )
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError(
                "variants: variant weights sum to 0; give at least one variant a weight > 0"
            )
        for unit, variant in self.forced.items():
            if variant not in ids:
                raise ValueError(f"forced: {unit} names unknown variant {variant!r}")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end: must be after start")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metrics: duplicate metric names")
        if sum(m.role == "primary" for m in self.metrics) > 1:
            raise ValueError("metrics: at most one metric may have role primary")
        if self.bandit is not None:
            problems = self.bandit.check(self.metrics, len(self.variants))
            if problems:
                raise ValueError(problems[0])
        if self.rollout is not None:
            for i, stage in enumerate(self.rollout.stages):
                unknown = sorted(set(stage.weights or {}) - set(ids))
                if unknown:
                    raise ValueError(
                        f"rollout.stages[{i}].weights: names unknown variants: "
                        + ", ".join(unknown)
                    )
        return self

    @property
    def hash_seed(self) -> str:
        """Seed for the variant hash; GrowthBook defaults it to the experiment key."""
        return self.seed or self.id

    @property
    def control(self) -> Variant:
        """The control arm (the only arm of a single-variant experiment)."""
        for variant in self.variants:
            if variant.control:
                return variant
        return self.variants[0]

    def variant(self, variant_id: str) -> Variant:
        """Return the variant with this id; ``KeyError`` when absent."""
        for variant in self.variants:
            if variant.id == variant_id:
                return variant
        raise KeyError(variant_id)

    @property
    def weights(self) -> list[float]:
        """Weights normalised to sum to 1, in variant order."""
        total = sum(v.weight for v in self.variants)
        return [v.weight / total for v in self.variants]


class ExperimentFile(BaseModel):
    """A YAML file: a list of experiments under the key ``experiments``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiments: list[Experiment] = Field(default_factory=list)

    def get(self, experiment_id: str) -> Experiment:
        """The experiment with this id or alias; ``KeyError`` when absent."""
        for exp in self.experiments:
            if exp.id == experiment_id or experiment_id in exp.aliases:
                return exp
        raise KeyError(experiment_id)
