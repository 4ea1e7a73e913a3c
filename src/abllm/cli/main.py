"""Entry point: builds the Typer app from one module per command group.

Each module in ``COMMAND_MODULES`` defines ``register(app)``; adding a command is adding a
module name here, so no file grows into a god module.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from abllm.cli.common import EXIT_BAD_INPUT, err_console
from abllm.errors import AbllmError

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
    """Console-script entry point: errors end as one line on stderr, never a traceback.

    Commands report bad input themselves (exit 2); an abllm error that escapes a command still
    prints as ``error: <code>: <message>``. Anything else is a bug: one line, exit 1, and the
    traceback only with ``ABLLM_DEBUG=1``.
    """
    try:
        app()
    except AbllmError as exc:
        err_console.print(f"error: {exc.code}: {exc.message}", markup=False, highlight=False)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:
        if os.environ.get("ABLLM_DEBUG"):
            raise
        err_console.print(
            f"error: internal: {type(exc).__name__}: {exc} (ABLLM_DEBUG=1 shows the traceback)",
            markup=False,
            highlight=False,
        )
        sys.exit(1)
