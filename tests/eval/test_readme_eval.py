"""The README's ``abllm eval`` line runs as written, offline, from a scratch folder."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ABLLM = str(Path(sys.executable).with_name("abllm"))


def test_readme_eval_command(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(m for m in re.findall(r"^abllm eval .*$", readme, flags=re.MULTILINE))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = subprocess.run(
        [ABLLM, *shlex.split(line)[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["variants"]) == {"control", "treatment"}
    assert report["judge"]["prompt_version"] == "summary-judge-v1"
    assert "judge" in report["comparisons"]["treatment"]
    rows = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 2 * report["dataset"]["rows"]
    assert (tmp_path / "abllm-data" / "events.duckdb").exists()
