"""Server mode: config synced from GET /v1/config, events batched to POST /v1/events."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from abllm import Client
from abllm.assign import Reason, RuntimeState, assign
from abllm.client import ClientSettings
from abllm.config import ExperimentFile
from abllm.errors import StoreUnavailable

from .conftest import Live, start_server, stop_server, wait_for

FAST = ClientSettings(flush_interval_s=0.05, timeout_s=2.0, max_backoff_s=0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_assignments_and_events_reach_the_server(live: Live, config: ExperimentFile) -> None:
    exp = config.get("exp_tone")
    with Client(server_url=live.url, api_key="k", settings=FAST) as c:
        assert c.store is None
        for i in range(200):
            assert c.assign("exp_tone", f"user-{i}") == assign(exp, f"user-{i}")
            c.track("exp_tone", f"user-{i}", rating=i % 5 + 1)
        assert c.flush(10)
        assert live.count("exposure") == 200 and live.count("feedback") == 200
        # batches, not one request per event
        assert live.pipeline.calls < 50


def test_back_pressure_is_retried_after_retry_after(live: Live) -> None:
    live.pipeline.failures = 2  # two 429s with Retry-After: 1
    with Client(server_url=live.url, settings=FAST) as c:
        started = time.monotonic()
        c.assign("exp_tone", "user-1")
        assert c.flush(10)
        waited = time.monotonic() - started
    assert live.count("exposure") == 1
    assert live.pipeline.calls == 3 and waited >= 1.9  # honoured Retry-After twice


def test_kill_switch_reaches_the_client_after_refresh(live: Live) -> None:
    with Client(server_url=live.url, refresh_s=0.1, settings=FAST) as c:
        unit = next(f"u{i}" for i in range(100) if c.assign("exp_tone", f"u{i}").variant_id)
        live.state.set("exp_tone", RuntimeState(killed=True, version=2))
        assert wait_for(lambda: c.assign("exp_tone", unit).reason == Reason.KILLED, 5)
        assert c.assign("exp_tone", unit).served_variant_id == "control"
        live.state.set("exp_tone", RuntimeState(version=3))
        assert c.refresh()
        assert c.assign("exp_tone", unit).reason != Reason.KILLED


def test_fail_safe_keeps_last_config_and_delivers_after_outage(
    config: ExperimentFile, tmp_path: Path
) -> None:
    port = free_port()
    live = start_server(config, tmp_path, port=port)
    c = Client(server_url=live.url, refresh_s=0.1, settings=FAST)
    try:
        live.state.set("exp_tone", RuntimeState(killed=True, version=1))
        assert c.refresh() and c.snapshot.state("exp_tone").killed
        stop_server(live)
        assert not c.refresh()  # unreachable: keeps what it had
        assert c.snapshot.state("exp_tone").killed
        assert c.assign("exp_tone", "user-7").reason == Reason.KILLED
        assert c.track("exp_tone", "user-7", rating=1) is None  # killed units are not counted
        a = c.assign("exp_target", "user-7", {"country": "FR"})  # buffered while down
        assert a.variant_id is not None
        assert not c.flush(0.3)
        live = start_server(config, tmp_path, port=port)  # same store file, same port
        assert c.flush(10)
        assert live.count("exposure") == 1
    finally:
        c.close()
        stop_server(live)


def test_start_without_server_needs_a_fallback_config(config_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable, match="pass config="):
        Client(server_url=url, settings=FAST)
    with Client(config_path, server_url=url, settings=FAST) as c:  # the file serves meanwhile
        assert c.assign("exp_tone", "user-1").in_experiment
        c.close(timeout=0.2)  # gives up on delivery quickly
    assert c.dropped_events == 0
