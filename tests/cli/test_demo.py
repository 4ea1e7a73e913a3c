"""``abllm demo --no-serve``: the whole loop (gateway, sim, feedback, analysis) in one command."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from abllm.cli.main import app


def test_demo_no_serve_prints_both_variants_and_a_recommendation(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--no-serve", "--data-dir", str(tmp_path)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "control" in out and "treatment" in out
    assert re.search(r"Recommendation: (SHIP|KEEP_CONTROL|NO_DIFFERENCE|CONTINUE)", out), out
    sent = re.search(r"sent ([\d,]+) requests \((\d+) failed\) and ([\d,]+) ratings", out)
    assert sent is not None, out
    assert int(sent.group(1).replace(",", "")) >= 2900
    assert int(sent.group(3).replace(",", "")) > 1000
    assert (tmp_path / "events.duckdb").exists()


def test_demo_keeps_serving_until_ctrl_c(tmp_path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    abllm = Path(sys.executable).parent / "abllm"
    proc = subprocess.Popen(
        [str(abllm), "demo", "--users", "60", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "keeps serving at" in line:
                break
        url = re.search(r"\(results: (\S+)\)", "".join(lines))
        assert url is not None, "".join(lines)
        with urllib.request.urlopen(url.group(1), timeout=10) as resp:
            assert json.loads(resp.read())["metrics"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, "".join(lines) + out
