"""README.md is executed: its offline shell commands and self-contained Python examples run.

Commands that need a running server or a database (serve, kill, analyze --store, ...) are
covered by their own tests; here every ``abllm validate|assign|power`` line of a ``sh`` block
runs as written (from a scratch folder holding ``examples/`` and a ``units.txt``), a ``# {...}``
line after a command is its expected JSON output, and every ``python`` block that names no URL runs.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
OFFLINE = ("validate", "assign", "power")
ABLLM = [str(Path(sys.executable).with_name("abllm"))]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.DOTALL)


def _commands() -> list[tuple[str, str | None]]:
    """(command line, expected JSON or None) for each offline ``abllm`` line in sh blocks."""
    found: list[tuple[str, str | None]] = []
    for block in _blocks("sh"):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            words = line.split("#", 1)[0].split()
            if len(words) < 2 or words[0] != "abllm" or words[1] not in OFFLINE:
                continue
            after = lines[i + 1].strip() if i + 1 < len(lines) else ""
            expected = after[1:].strip() if after.startswith("# {") else None
            found.append((line.split("#", 1)[0].strip(), expected))
    return found


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "units.txt").write_text("".join(f"user-{i}\n" for i in range(20)))
    return tmp_path


def test_readme_has_offline_commands() -> None:
    assert len(_commands()) >= 3


@pytest.mark.parametrize(("command", "expected"), _commands(), ids=lambda v: str(v)[:60])
def test_readme_shell_command(command: str, expected: str | None, scratch: Path) -> None:
    args = shlex.split(command)[1:]
    done = subprocess.run(
        [*ABLLM, *args], cwd=scratch, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    if expected is not None:
        assert json.loads(done.stdout) == json.loads(expected)


def test_readme_yaml_example_is_valid(tmp_path: Path) -> None:
    (block,) = _blocks("yaml")
    path = tmp_path / "experiments.yaml"
    path.write_text(block)
    done = subprocess.run(
        [*ABLLM, "validate", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "code", [b for b in _blocks("python") if "http://" not in b], ids=lambda b: b.split("\n")[0]
)
def test_readme_python_example(code: str) -> None:
    runnable = code.replace("[...]", "[]")
    done = subprocess.run(
        [sys.executable, "-c", runnable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
