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
