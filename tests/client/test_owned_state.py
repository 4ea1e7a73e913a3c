"""A file-config Client reads the runtime state where ``abllm serve`` keeps it, fail safe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import abllm.state
from abllm import Client
from abllm.assign import Reason
from abllm.config import ExperimentFile
from abllm.errors import StoreUnavailable, ValidationError
from abllm.rollout import kill
from abllm.state.embedded import EmbeddedStateStore

from .conftest import wait_for


def test_unreachable_state_serves_control_then_follows_the_store(
    config: ExperimentFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = EmbeddedStateStore(str(tmp_path / "state.sqlite"))
    kill(real, "exp_tone", actor="test")
    calls: list[str] = []

    def flaky_open(url: str | None = None, **_: Any) -> Any:
        calls.append(str(url))
        if len(calls) < 3:
            raise StoreUnavailable("state store down")
        return EmbeddedStateStore(str(tmp_path / "state.sqlite"))

    monkeypatch.setattr(abllm.state, "open_state", flaky_open)
    started = time.monotonic()
    with Client(
        config, store="duckdb:///:memory:", state="sqlite:///x", spool_dir=tmp_path / "s"
    ) as c:
        assert time.monotonic() - started < 2  # the app starts while the state is down
        first = c.assign("exp_tone", "user-1")
        assert (first.reason, first.variant_id, first.served_variant_id) == (
            Reason.PAUSED,
            None,
            "control",
        )
        # reached on a retry: the kill recorded there now applies
        assert wait_for(lambda: c.assign("exp_tone", "user-1").reason == Reason.KILLED, 10)
    assert len(calls) == 3
    real.close()


def test_a_store_without_state_is_refused(config: ExperimentFile, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="runtime state cannot live"):
        Client(config, store="clickhouse://localhost:8123/db", spool_dir=tmp_path / "s")
