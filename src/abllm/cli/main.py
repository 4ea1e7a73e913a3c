"""Entry point: a Typer app whose commands are imported only when run.

Each module in ``COMMANDS`` defines ``register(app)``; adding a command is adding a row here
(``tests/cli/test_main.py`` checks the table against what the modules register). ``abllm
--help`` lists the table without importing any command module: they pull in scipy, the
server and the SDK, which made a bare ``--help`` take ~1.4 s (``benches/cli_startup.py``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from difflib import get_close_matches
from typing import Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from abllm.errors import AbllmError

EXIT_BAD_INPUT = 2  # the same as abllm.cli.common.EXIT_BAD_INPUT, without importing it

# command name -> (module that registers it, the one-line help shown by ``abllm --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": (
        "abllm.cli.validate",
        "Validate CONFIG; print one line per problem (file:line: experiment: field: message).",
    ),
    "assign": (
        "abllm.cli.assign",
        "Assign a unit (or every unit of a file) to a variant, with the reason.",
    ),
    "serve": (
        "abllm.cli.serve",
        "Serve the OpenAI-compatible gateway (POST /v1/chat/completions) and the API.",
    ),
    "demo": (
        "abllm.cli.demo",
        "Play a staged rollout through the gateway on a simulated clock.",
    ),
    "kill": (
        "abllm.cli.rollout",
        "Kill switch: every process serves control for EXPERIMENT within a second.",
    ),
    "resume": (
        "abllm.cli.rollout",
        "Undo a kill or pause (also un-pauses arms a guardrail paused).",
    ),
    "analyze": (
        "abllm.cli.analyze",
        "Results of one experiment: metrics with CIs, checks and a recommendation.",
    ),
    "power": (
        "abllm.cli.power",
        "Units per arm the decision rule needs to detect an effect, or the MDE for a size.",
    ),
    "rollout": ("abllm.cli.rollout", "Show and move an experiment's rollout stage."),
    "events": ("abllm.cli.events", "Import and export events."),
    "eval": (
        "abllm.cli.eval",
        "Replay a dataset through every variant, score the answers and compare them.",
    ),
}


def load_group(module: str) -> TyperGroup:
    """The click group holding every command ``module`` registers."""
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    importlib.import_module(module).register(sub)
    return typer.main.get_group(sub)


class LazyGroup(TyperGroup):
    """Lists commands from ``COMMANDS``; imports a command's module only to run it.

    ``ctx`` is typed ``Any``: its class is click's ``Context``, which recent typer releases
    vendor under a private module and older ones take from click itself.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> TyperCommand | None:
        # Help listings ask for every command: answer with a placeholder that has only the
        # name and the one-line help. Running a command goes through resolve_command.
        row = COMMANDS.get(cmd_name)
        if row is None:
            return None
        return TyperCommand(cmd_name, help=row[1], short_help=row[1])

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0]
        row = COMMANDS.get(name)
        if row is None:
            matches = get_close_matches(name, list(COMMANDS))
            hint = f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
            fail: Callable[[str], NoReturn] = ctx.fail
            fail(f"No such command {name!r}.{hint}")
        command = load_group(row[0]).get_command(ctx, name)
        return name, command, args[1:]


app = typer.Typer(
    name="abllm",
    cls=LazyGroup,
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def installed_version() -> str:
    """The installed distribution's version (``abllm.__version__`` when run from a source tree
    that pip never installed); reads package metadata only, no command module."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("abllm")
    except PackageNotFoundError:
        from abllm import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"abllm {installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the installed abllm version and exit.",
    ),
) -> None:
    """A/B testing and gradual rollout for LLM features."""


def _print_error(line: str) -> None:
    print(line, file=sys.stderr)


def main() -> None:
    """Console-script entry point: errors end as one line on stderr, never a traceback.

    Commands report bad input themselves (exit 2); an abllm error that escapes a command still
    prints as ``error: <code>: <message>``. Anything else is a bug: one line, exit 1, and the
    traceback only with ``ABLLM_DEBUG=1``.
    """
    try:
        app()
    except AbllmError as exc:
        _print_error(f"error: {exc.code}: {exc.message}")
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:
        if os.environ.get("ABLLM_DEBUG"):
            raise
        _print_error(
            f"error: internal: {type(exc).__name__}: {exc} (ABLLM_DEBUG=1 shows the traceback)"
        )
        sys.exit(1)
