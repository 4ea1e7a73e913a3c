"""``abllm validate CONFIG``: check an experiment file and summarise it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from abllm.cli.common import console, load_config


def validate(
    config: Path = typer.Argument(..., help="YAML file with an `experiments:` list"),
) -> None:
    """Validate CONFIG; print one line per problem (file:line: experiment: field: message)."""
    loaded = load_config(config)
    table = Table(title=f"{config}: {len(loaded.experiments)} experiment(s) valid")
    for column in ("experiment", "version", "status", "unit", "traffic %", "variants", "metrics"):
        table.add_column(column)
    for exp in loaded.experiments:
        arms = ", ".join(
            f"{v.id}{'*' if v.control else ''} ({w:.0%})"
            for v, w in zip(exp.variants, exp.weights, strict=True)
        )
        table.add_row(
            exp.id,
            str(exp.version),
            exp.status,
            exp.unit,
            f"{exp.traffic:g}",
            arms,
            ", ".join(m.name for m in exp.metrics) or "-",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``validate`` command."""
    app.command("validate")(validate)
