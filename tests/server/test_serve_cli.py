"""``abllm serve CONFIG [--store URL] [--host] [--port]`` as a user runs it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from openai import OpenAI
from typer.testing import CliRunner

from abllm.assign import assign
from abllm.cli.main import app
from abllm.config import loads_experiments

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
experiments:
  - id: exp_cli
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_and_stops_on_ctrl_c(tmp_path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG)
    port = free_port()
    abllm = Path(sys.executable).parent / "abllm"
    store = f"duckdb:///{tmp_path / 'ev.duckdb'}"
    proc = subprocess.Popen(
        [
            str(abllm),
            "serve",
            str(cfg),
            "--store",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--spool-dir",
            str(tmp_path / "spool"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "abllm serve did not become healthy"
                time.sleep(0.1)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        exp = loads_experiments(CONFIG).experiments[0]
        unit = next(f"u{i}" for i in range(100) if assign(exp, f"u{i}").variant_id == "treatment")

        def variant() -> str:
            raw = client.chat.completions.with_raw_response.create(
                model="exp_cli", messages=[{"role": "user", "content": "hi"}], user=unit
            )
            assert raw.headers["x-abllm-experiment"] == "exp_cli"
            assert raw.parse().choices[0].message.content
            return raw.headers["x-abllm-variant"]

        assert variant() == "treatment"
        # `abllm kill` from another process reaches the running gateway within seconds.
        killed = subprocess.run(
            [str(abllm), "kill", "exp_cli", "--store", store, "--reason", "test"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert killed.returncode == 0, killed.stdout + killed.stderr
        deadline = time.monotonic() + 10
        while variant() != "control":
            assert time.monotonic() < deadline, "the kill switch did not reach the gateway"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()
    assert f"http://127.0.0.1:{port}/v1" in out.decode()


def test_serve_refuses_changed_variants_of_a_live_experiment(tmp_path) -> None:
    from abllm.rollout import register_experiments
    from abllm.state import open_state

    store = f"duckdb:///{tmp_path / 'ev.duckdb'}"
    state = open_state(None, store_url=store)
    register_experiments(state, loads_experiments(CONFIG).experiments)
    state.close()
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(CONFIG.replace("id: treatment", "id: treatment_b"))
    result = CliRunner().invoke(app, ["serve", str(cfg), "--store", store, "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "error: conflict:" in result.output and "version" in result.output


def test_serve_bad_config_is_one_line_error(tmp_path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("experiments:\n  - id: x\n    variants: []\n")
    result = CliRunner().invoke(app, ["serve", str(cfg), "--port", "1"])
    assert result.exit_code == 2
    assert "error:" in result.output and "variants" in result.output
    assert "Traceback" not in result.output
