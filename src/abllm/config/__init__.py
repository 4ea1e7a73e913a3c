"""Experiment configuration: pydantic models and YAML loading with field-named errors."""

from abllm.config.bandit import BanditConfig
from abllm.config.eval import (
    SCORER_NAMES,
    EvalConfig,
    EvalSchedule,
    JudgeConfig,
    ScorerName,
)
from abllm.config.experiment import Experiment, ExperimentFile, Status, UnitType, Variant
from abllm.config.llm import FewShotExample, LLMConfig, ProviderName, SimProfile
from abllm.config.loader import load_experiments, loads_experiments, parse_experiments
from abllm.config.metrics import DecisionRule, EventType, Metric
from abllm.config.rollout import Guardrail, RolloutPlan, Stage, WinnerStage
from abllm.config.targeting import Layer, TargetingRule

__all__ = [
    "SCORER_NAMES",
    "BanditConfig",
    "DecisionRule",
    "EvalConfig",
    "EvalSchedule",
    "EventType",
    "Experiment",
    "ExperimentFile",
    "FewShotExample",
    "Guardrail",
    "JudgeConfig",
    "LLMConfig",
    "Layer",
    "Metric",
    "ProviderName",
    "RolloutPlan",
    "ScorerName",
    "SimProfile",
    "Stage",
    "Status",
    "TargetingRule",
    "UnitType",
    "Variant",
    "WinnerStage",
    "load_experiments",
    "loads_experiments",
    "parse_experiments",
]
