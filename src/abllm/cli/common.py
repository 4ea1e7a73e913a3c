"""Helpers shared by CLI commands: clean one-line errors, config loading, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from abllm.config import Experiment, ExperimentFile, load_experiments
from abllm.errors import AbllmError, ConfigError, NotFound

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2


def fail(exc: AbllmError | str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print an error without a traceback and exit; config errors print one line per problem."""
    if isinstance(exc, ConfigError):
        for line in exc.problems:
            err_console.print(f"error: {line}", markup=False, highlight=False)
    elif isinstance(exc, AbllmError):
        err_console.print(f"error: {exc.code}: {exc.message}", markup=False, highlight=False)
    else:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
    raise typer.Exit(code)


def load_config(path: Path) -> ExperimentFile:
    """Load an experiment file or exit 2 with every problem listed."""
    try:
        return load_experiments(path)
    except ConfigError as exc:
        fail(exc)


def get_experiment(config: ExperimentFile, experiment_id: str) -> Experiment:
    """The experiment named on the command line, or exit 2 listing the known ids."""
    try:
        return config.get(experiment_id)
    except KeyError:
        known = ", ".join(e.id for e in config.experiments) or "none"
        fail(NotFound(f"no experiment {experiment_id!r} in the config (known: {known})"))


def print_json(data: Any) -> None:
    """Write one JSON document to stdout (no rich markup, machine-readable)."""
    sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
