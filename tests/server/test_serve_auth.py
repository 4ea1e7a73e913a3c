"""``abllm serve`` refuses to serve a keyless gateway beyond loopback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from abllm.cli.main import app

CONFIG = """
experiments:
  - id: exp_cli
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0}}
"""


def test_no_key_on_all_interfaces_exits_2_saying_how_to_add_one(
    tmp_path: Path, monkeypatch: object
) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG)
    args = ["serve", str(cfg), "--store", f"duckdb:///{tmp_path / 'ev.duckdb'}"]
    result = CliRunner().invoke(
        app,
        [*args, "--spool-dir", str(tmp_path / "spool"), "--host", "0.0.0.0", "--no-controller"],
        env={"ABLLM_API_KEYS": "", "ABLLM_ADMIN_KEYS": ""},
    )
    assert result.exit_code == 2, result.output
    assert "loopback only" in result.output and "--admin-key-file" in result.output
    assert "--insecure" in result.output
