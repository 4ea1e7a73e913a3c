"""The lazy command table agrees with what the command modules register."""

from __future__ import annotations

import subprocess
import sys

import typer

from abllm.cli.main import COMMANDS, load_group


def _first_line(command: typer.core.TyperCommand) -> str:
    return (command.help or "").strip().splitlines()[0]


def test_table_matches_registered_commands() -> None:
    registered: dict[str, tuple[str, str]] = {}
    for module in sorted({module for module, _ in COMMANDS.values()}):
        group = load_group(module)
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            registered[name] = (module, _first_line(command))
    assert registered == COMMANDS


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys\n"
        "from abllm.cli.main import main\n"
        "sys.argv = ['abllm', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('abllm.cli.'))\n"
        "loaded.remove('abllm.cli.main')\n"
        "heavy = sorted({'scipy', 'fastapi', 'duckdb', 'pydantic'} & set(sys.modules))\n"
        "print(loaded, heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[] []"
    assert "validate" in done.stdout


def test_unknown_command_suggests(capsys: object) -> None:
    from typer.testing import CliRunner

    from abllm.cli.main import app

    result = CliRunner().invoke(app, ["kil", "x"])
    assert result.exit_code == 2
    assert "Did you mean 'kill'" in result.output
    assert isinstance(app, typer.Typer)


def test_version_prints_the_installed_version_and_imports_nothing_heavy() -> None:
    from importlib.metadata import version

    import abllm

    code = (
        "import sys\n"
        "from abllm.cli.main import main\n"
        "sys.argv = ['abllm', '--version']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('abllm.cli.'))\n"
        "loaded.remove('abllm.cli.main')\n"
        "heavy = sorted({'scipy', 'fastapi', 'duckdb', 'pydantic', 'numpy'} & set(sys.modules))\n"
        "print(loaded, heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[] []"
    assert done.stdout.strip() == f"abllm {version('abllm')}"
    assert version("abllm") == abllm.__version__  # pyproject.toml and the package agree


def test_version_console_script() -> None:
    import shutil
    from pathlib import Path

    exe = Path(sys.executable).with_name("abllm")
    script = str(exe) if exe.exists() else shutil.which("abllm")
    assert script is not None, "the abllm console script is not installed"
    done = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("abllm ")
