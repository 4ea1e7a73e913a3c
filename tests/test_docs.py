"""Documentation is tested where it can be: every CLI command and config field is documented."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel

from abllm import config as cfg
from abllm.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])

MODELS: list[type[BaseModel]] = [
    cfg.Experiment,
    cfg.Variant,
    cfg.LLMConfig,
    cfg.SimProfile,
    cfg.FewShotExample,
    cfg.TargetingRule,
    cfg.Layer,
    cfg.Metric,
    cfg.DecisionRule,
    cfg.Guardrail,
    cfg.RolloutPlan,
    cfg.Stage,
    cfg.WinnerStage,
    cfg.BanditConfig,
    cfg.EvalConfig,
    cfg.JudgeConfig,
    cfg.EvalSchedule,
]


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    names = [
        f"{prefix}{c.name or (c.callback.__name__ if c.callback else '')}"
        for c in group.registered_commands
    ]
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            name = sub.name if isinstance(sub.name, str) else sub.typer_instance.info.name
            names += _commands(sub.typer_instance, f"{prefix}{name} ")
    return names


def _full_app() -> typer.Typer:
    app = typer.Typer()
    for module in dict.fromkeys(module for module, _ in COMMANDS.values()):
        importlib.import_module(module).register(app)
    return app


@pytest.mark.parametrize("command", _commands(_full_app()))
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"abllm {command}" in DOCS, f"`abllm {command}` is not in README.md or docs/"


@pytest.mark.parametrize(
    ("model", "field"),
    [(m, f) for m in MODELS for f in m.model_fields],
    ids=lambda x: x.__name__ if isinstance(x, type) else str(x),
)
def test_every_config_field_is_documented(model: type[BaseModel], field: str) -> None:
    text = (ROOT / "docs" / "config.md").read_text()
    assert re.search(rf"`{re.escape(field)}`", text), (
        f"{model.__name__}.{field} not in docs/config.md"
    )
