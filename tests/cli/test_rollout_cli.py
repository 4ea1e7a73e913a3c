"""``abllm kill|resume`` and ``abllm rollout status|advance|rollback|run`` through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abllm.cli.main import app
from abllm.config import loads_experiments
from abllm.rollout import register_experiment
from abllm.state import StateView, open_state

runner = CliRunner()

CONFIG = """
experiments:
  - id: exp_cli
    variants:
      - {id: control, control: true, llm: {model: m}}
      - {id: a, llm: {model: m}}
    rollout:
      stages:
        - {name: canary, traffic: 10}
        - {name: half, traffic: 50}
"""


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """An embedded event store URL; state lives in the SQLite file beside it."""
    url = f"duckdb:///{tmp_path}/data/events.duckdb"
    state = open_state(store_url=url)
    register_experiment(state, loads_experiments(CONFIG).experiments[0], actor="serve")
    state.close()
    return url


@pytest.fixture
def serving(store_url: str) -> Iterator[StateView]:
    """A live serving process's view of the state: CLI changes are confirmed at once."""
    view = StateView(open_state(store_url=store_url)).start()
    yield view
    view.close()
    view.store.close()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_state_lives_beside_the_embedded_store(store_url: str, tmp_path: Path) -> None:
    assert (tmp_path / "data" / "events.state.sqlite").exists()


def test_kill_and_resume(store_url: str, serving: StateView) -> None:
    code, out, _ = invoke("kill", "exp_cli", "--store", store_url, "--reason", "bad answers")
    assert code == 0 and "killed exp_cli" in out and "KILLED" in out
    assert "(applied by 1 of 1 live process)" in out
    code, out, _ = invoke("rollout", "status", "exp_cli", "--store", store_url, "--json")
    data = json.loads(out)
    assert data["killed"] and data["runtime"]["killed"]
    assert data["audit"][-1]["action"] == "kill"
    assert data["audit"][-1]["reason"] == "bad answers"
    assert data["audit"][-1]["actor"].startswith("cli:")
    code, out, _ = invoke("resume", "exp_cli", "--store", store_url, "--actor", "alice", "--json")
    assert code == 0 and json.loads(out)["killed"] is False
    audit = open_state(store_url=store_url).audit("exp_cli")
    assert [r.action for r in audit] == ["register", "kill", "resume"]
    assert audit[-1].actor == "alice"


def test_advance_and_rollback(store_url: str, serving: StateView) -> None:
    code, out, _ = invoke("rollout", "status", "exp_cli", "--store", store_url)
    assert code == 0 and "stage 1/2 'canary'" in out and "traffic: 10 %" in out
    code, out, _ = invoke("rollout", "advance", "exp_cli", "--store", store_url, "--json")
    assert code == 0 and json.loads(out)["traffic"] == 50
    code, _, err = invoke("rollout", "advance", "exp_cli", "--store", store_url)
    assert code == 2 and "error: conflict:" in err and "--winner" in err
    code, out, _ = invoke(
        "rollout", "advance", "exp_cli", "--winner", "a", "--store", store_url, "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["winner"] == "a" and data["winner_percent"] == 75
    code, out, _ = invoke("rollout", "rollback", "exp_cli", "--store", store_url, "--json")
    data = json.loads(out)
    assert data["winner"] is None and data["stage"] == 1 and data["held"]
    invoke("rollout", "rollback", "exp_cli", "--store", store_url)
    code, _, err = invoke("rollout", "rollback", "exp_cli", "--store", store_url)
    assert code == 2 and "first stage" in err


def test_state_option_names_another_backend(store_url: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path}/elsewhere.sqlite"
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    code, _, err = invoke("kill", "exp_cli", "--store", store_url, "--state", other)
    assert code == 2 and "unknown experiment 'exp_cli'" in err and "known: none" in err
    args = ("--store", store_url, "--state", other, "--config", str(config), "--json")
    code, out, _ = invoke("kill", "exp_cli", *args)
    assert code == 0 and json.loads(out)["killed"]
    assert [r.action for r in open_state(other).audit("exp_cli")] == ["register", "kill"]
    assert not open_state(store_url=store_url).get("exp_cli").killed  # type: ignore[union-attr]


def test_errors_are_one_line(store_url: str, tmp_path: Path) -> None:
    code, _, err = invoke("rollout", "status", "nope", "--store", store_url)
    assert code == 2 and err.strip() == (
        "error: not_found: unknown experiment 'nope': not registered in the state store "
        "(known: exp_cli)"
    )
    code, _, err = invoke("rollout", "advance", "nope", "--store", store_url)
    assert code == 2 and err.startswith("error: not_found:")
    code, _, err = invoke("kill", "x", "--state", "ftp://x")
    assert code == 2 and "unknown state URL scheme" in err


TYPO_CONFIG = CONFIG.replace("exp_cli", "exp_summarize_v2")


@pytest.mark.parametrize(
    "command",
    [
        ["kill"],
        ["resume"],
        ["rollout", "status"],
        ["rollout", "advance"],
        ["rollout", "rollback"],
    ],
)
def test_unknown_experiment_exits_2_and_writes_nothing(command: list[str], tmp_path: Path) -> None:
    """``abllm kill exp_sumarize_v2`` (a typo) once exited 0 and said "killed"."""
    url = f"duckdb:///{tmp_path}/data/events.duckdb"
    state = open_state(store_url=url)
    register_experiment(state, loads_experiments(TYPO_CONFIG).experiments[0], actor="serve")
    before = state.snapshot()
    code, out, err = invoke(*command, "exp_sumarize_v2", "--store", url)
    assert code == 2, out
    assert "unknown experiment 'exp_sumarize_v2'" in err
    assert "known: exp_summarize_v2" in err and "did you mean 'exp_summarize_v2'?" in err
    assert state.snapshot() == before
    assert state.audit("exp_sumarize_v2") == []
    assert len(state.audit("exp_summarize_v2")) == 1
    state.close()


def test_config_registers_the_experiment_first(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/data/events.duckdb"
    config = tmp_path / "exp.yaml"
    config.write_text(TYPO_CONFIG)
    code, _, err = invoke("kill", "exp_sumarize_v2", "--store", url, "--config", str(config))
    assert code == 2 and "known: exp_summarize_v2" in err
    state = open_state(store_url=url)
    assert state.snapshot() == {}
    code, out, err = invoke("kill", "exp_summarize_v2", "--store", url, "--config", str(config))
    assert code == 0, err
    assert [r.action for r in state.audit("exp_summarize_v2")] == ["register", "kill"]
    code, out, _ = invoke("rollout", "status", "exp_summarize_v2", "--store", url, "--json")
    assert code == 0 and json.loads(out)["killed"]
    state.close()


def test_run_once_refuses_changed_variants(store_url: str, tmp_path: Path) -> None:
    changed = CONFIG.replace("      - {id: a, llm: {model: m}}", "      - {id: b, llm: {model: m}}")
    path = tmp_path / "changed.yaml"
    path.write_text(changed)
    code, _, err = invoke("rollout", "run", str(path), "--store", store_url, "--once")
    assert code == 2 and "error: conflict:" in err and "version: 2" in err
    path.write_text(changed.replace("  - id: exp_cli\n", "  - id: exp_cli\n    version: 2\n"))
    code, _, err = invoke("rollout", "run", str(path), "--store", store_url, "--once")
    assert code == 0, err
    state = open_state(store_url=store_url).get("exp_cli")
    assert state is not None and state.experiment_version == 2
