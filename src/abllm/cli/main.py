"""Entry point: builds the Typer app from one module per command group.

Each module in ``COMMAND_MODULES`` defines ``register(app)``; adding a command is adding a
module name here, so no file grows into a god module.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "abllm.cli.validate",
    "abllm.cli.assign",
    "abllm.cli.serve",
    "abllm.cli.demo",
    "abllm.cli.rollout",
    "abllm.cli.events",
    "abllm.cli.analyze",
    "abllm.cli.power",
)

app = typer.Typer(
    name="abllm",
    help="A/B testing and gradual rollout for LLM features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console-script entry point."""
    app()
