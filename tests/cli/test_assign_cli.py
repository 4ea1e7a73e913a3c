"""CLI: validate and assign, including the documented JSON keys and error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abllm.assign import assign
from abllm.cli.main import app
from abllm.config import load_experiments

ROOT = Path(__file__).resolve().parents[2]
SUMMARIZE = str(ROOT / "examples" / "summarize.yaml")
runner = CliRunner(env={"COLUMNS": "200"})


def test_help_lists_commands() -> None:
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for command in ("validate", "assign"):
        assert command in out.output


def test_validate_ok() -> None:
    out = runner.invoke(app, ["validate", SUMMARIZE])
    assert out.exit_code == 0, out.output
    assert "exp_summarize_v2" in out.output


def test_validate_bad_config_exit_2_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SUMMARIZE).read_text().replace("traffic: 100", "traffic: 120"))
    out = runner.invoke(app, ["validate", str(bad)])
    assert out.exit_code == 2
    assert "experiment exp_summarize_v2: traffic:" in out.output
    assert "Traceback" not in out.output


def test_assign_json_keys() -> None:
    out = runner.invoke(
        app, ["assign", SUMMARIZE, "--experiment", "exp_summarize_v2", "--unit", "user-7", "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {"experiment_id", "variant_id", "in_experiment", "reason", "bucket"} <= set(data)
    exp = load_experiments(SUMMARIZE).get("exp_summarize_v2")
    assert data["variant_id"] == assign(exp, "user-7").variant_id


def test_assign_attr_and_unknown_experiment() -> None:
    out = runner.invoke(app, ["assign", SUMMARIZE, "-e", "nope", "-u", "x"])
    assert out.exit_code == 2 and "no experiment 'nope'" in out.output
    out = runner.invoke(
        app, ["assign", SUMMARIZE, "-e", "exp_summarize_v2", "-u", "x", "--attr", "novalue"]
    )
    assert out.exit_code == 2 and "expected key=value" in out.output


def test_assign_units_file_streams_in_order(tmp_path: Path) -> None:
    units = [f"u{i}" for i in range(2500)] + ['quote"unit']
    path = tmp_path / "units.txt"
    path.write_text("\n".join(units) + "\n")
    out = runner.invoke(
        app, ["assign", SUMMARIZE, "-e", "exp_summarize_v2", "--units-file", str(path), "--json"]
    )
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    exp = load_experiments(SUMMARIZE).get("exp_summarize_v2")
    assert [r["unit_id"] for r in rows] == units
    for row, unit in zip(rows, units, strict=True):
        a = assign(exp, unit)
        assert (row["variant_id"], row["reason"], row["bucket"], row["in_experiment"]) == (
            a.variant_id,
            str(a.reason),
            a.bucket,
            a.in_experiment,
        )


def test_main_turns_escaping_errors_into_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from abllm.cli import main as entry
    from abllm.errors import StoreUnavailable

    def boom() -> None:
        raise StoreUnavailable("store down")

    monkeypatch.setattr(entry, "app", boom)
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: store_unavailable: store down" in err and "Traceback" not in err

    def bug() -> None:
        raise RuntimeError("oops")

    monkeypatch.setattr(entry, "app", bug)
    monkeypatch.delenv("ABLLM_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 1
    assert "error: internal: RuntimeError: oops" in capsys.readouterr().err
