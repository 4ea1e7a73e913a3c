"""CLI: ``abllm power`` table and JSON output, and clean errors (own Typer app)."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from abllm.cli.power import register

app = typer.Typer()
register(app)


@app.callback()
def _root() -> None:
    """Keep ``power`` a named sub-command, as in the real app."""


runner = CliRunner(env={"COLUMNS": "200"})
ISSUE_ARGS = [
    "power",
    "--baseline-mean",
    "3.8",
    "--sd",
    "1.0",
    "--mde",
    "0.2",
    "--alpha",
    "0.05",
    "--power",
    "0.8",
]
#: The textbook two-sample z plan (the decision rule's defaults switched off).
TEXTBOOK = ["--fixed-horizon", "--correction", "none", "--min-units-per-arm", "0"]


def test_issue_example_prints_a_table() -> None:
    out = runner.invoke(app, [*ISSUE_ARGS, *TEXTBOOK])
    assert out.exit_code == 0, out.output
    assert "units per arm" in out.output
    assert "393" in out.output
    assert "786" in out.output


def test_json_for_machines() -> None:
    out = runner.invoke(app, [*ISSUE_ARGS, *TEXTBOOK, "--daily-units", "100", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["units_per_arm"] == 393
    assert data["total_units"] == 786
    assert data["days"] == 8
    assert data["mde"] == 0.2 and data["alternative"] == "two-sided"


def test_rate_relative_and_mde_mode() -> None:
    out = runner.invoke(
        app, ["power", "--baseline-rate", "0.1", "--mde", "0.1", "--relative", "--json", *TEXTBOOK]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["units_per_arm"] == 14749
    out = runner.invoke(
        app,
        ["power", "--baseline-mean", "3.8", "--sd", "1", "--units-per-arm", "393", "--json",
         *TEXTBOOK],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert abs(json.loads(out.stdout)["mde"] - 0.2) < 1e-3
    out = runner.invoke(
        app, ["power", "--baseline-mean", "3.8", "--sd", "1", "--units-per-arm", "393"]
    )
    assert "(solved)" in out.output


def test_bad_input_is_one_line_without_traceback() -> None:
    out = runner.invoke(app, ["power", "--sd", "1.0", "--mde", "0.2"])
    assert out.exit_code == 2
    assert "error: invalid_request:" in out.output
    assert "baseline_mean" in out.output
    assert "Traceback" not in out.output
    out = runner.invoke(app, [*ISSUE_ARGS, "--alpha", "0.9"])
    assert out.exit_code == 2 and "alpha" in out.output


def test_default_plan_is_the_decision_rules() -> None:
    """``abllm power`` with defaults, the rule's ``units_needed`` and its power agree."""
    from abllm.analysis.compute import required_units
    from abllm.config import DecisionRule
    from abllm.stats import MeanStats

    rule = DecisionRule(mde=0.2, mde_type="absolute", min_units_per_arm=0)
    for arms in (2, 3):
        args = [*ISSUE_ARGS, "--min-units-per-arm", "0", "--arms", str(arms), "--json"]
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
        control = MeanStats(10_000, 38_000.0, 10_000 * 3.8**2 + 9_999.0)  # mean 3.8, sd 1
        assert json.loads(out.stdout)["units_per_arm"] == required_units(rule, control, arms)
    floor = json.loads(runner.invoke(app, [*ISSUE_ARGS, "--json"]).stdout)
    assert floor["units_per_arm"] == 1000  # min_units_per_arm 1000 is a floor above 752
