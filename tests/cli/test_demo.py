"""``abllm demo --no-serve``: the whole loop (gateway, sim, feedback, analysis) in one command."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from abllm.cli.main import app


def test_demo_tells_the_whole_rollout_story_in_80_columns(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--no-serve", "--data-dir", str(tmp_path)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert max(len(line) for line in out.splitlines() if "--store" not in line) <= 80
    # canary -> ramp stages, moved by the controller on the simulated clock
    assert "entered stage 2/3 'ramp'" in out and "entered stage 3/3 'full'" in out
    # the failing arm is paused by its guardrail
    assert re.search(r"PAUSED verbose: guardrail breached: error_rate of\s+verbose", out), out
    # the winner is recommended with its lift and CI, rolled out to 100 %, experiment completed
    assert re.search(r"the analysis said SHIP concise", out), out
    assert re.search(r"lift\s+\+\d+\.\d%\s+\(95 % CI \+\d+\.\d% \.\. \+\d+\.\d%\)", out), out
    assert "winner concise now serves 75 % of units" in out
    assert "winner concise now serves 95 % of units" in out
    assert "is completed, winner concise serves 100 %" in out
    # then the audit trail, the dashboard URL and what to try next
    audit = out[out.index("Audit trail") :]
    for action in ("register", "pause_variant", "advance", "start_winner", "complete"):
        assert action in audit
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/dashboard/experiments/", out)
    assert "abllm rollout status exp_summarize_rollout" in out
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
