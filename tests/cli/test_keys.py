"""``abllm keys create|list|revoke`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from abllm.cli.main import app


def test_create_shows_the_key_once_list_and_revoke(tmp_path: Path) -> None:
    store = ["--store", f"sqlite:///{tmp_path / 'ev.sqlite'}"]
    run = CliRunner().invoke
    made = run(app, ["keys", "create", "--scope", "admin", "--name", "ops", *store])
    assert made.exit_code == 0, made.output
    key = made.output.splitlines()[0]
    assert key.startswith("abllm_ak_") and "not shown again" in made.output
    listed = run(app, ["keys", "list", "--json", *store])
    rows = json.loads(listed.output)
    assert [(r["name"], r["scope"]) for r in rows] == [("ops", "admin")]
    assert key not in listed.output and key.startswith(rows[0]["prefix"])
    # The state file holds the hash, never the key.
    state_files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert state_files and all(key.encode() not in p.read_bytes() for p in state_files)
    again = run(app, ["keys", "create", "--name", "ops", *store])
    assert again.exit_code == 2 and "exists" in again.output
    revoked = run(app, ["keys", "revoke", "ops", *store])
    assert revoked.exit_code == 0 and "revoked ops" in revoked.output
    assert json.loads(run(app, ["keys", "list", "--json", *store]).output) == []
    assert run(app, ["keys", "revoke", "ops", *store]).exit_code == 2
