"""The loop closes inside ``abllm serve``: a guardrail pauses a failing arm with no other process.

The case from the rollout issue: a treatment whose simulated calls fail half the time, a
guardrail ``{metric: error_rate, max_ratio: 2, action: pause, min_units: 50}`` checked every
2 s. On the embedded store one ``serve`` must pause it within 30 s of traffic; on PostgreSQL two
``serve`` processes share the state and the audit log shows exactly one pause. (Control fails
2 % of its calls: the relative bound against a 0 % control is the analysis' degenerate case,
covered by the analysis tests.)
"""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from abllm.state import open_state
from serve_process import GUARD_CONFIG as CONFIG
from serve_process import PROCESSES, chat, healthz, serving


def holder(port: int) -> str:
    controller = healthz(port)["controller"]
    assert isinstance(controller, dict)
    return str(controller["experiments"]["exp_guard"]["lease_holder"])


def me(port: int) -> str:
    controller = healthz(port)["controller"]
    assert isinstance(controller, dict)
    return str(controller["holder"])


def drive_until_paused(ports: list[int], state_url: str, within_s: float) -> float:
    """Send traffic round-robin until the treatment is paused; returns the seconds taken."""
    state = open_state(state_url)
    try:
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < within_s:
            for _ in range(20):
                chat(ports[i % len(ports)], f"u{i}")
                i += 1
            current = state.get("exp_guard")
            if current is not None and "treatment" in current.paused_variants:
                return time.monotonic() - started
        raise AssertionError(f"treatment not paused within {within_s} s of traffic ({i} units)")
    finally:
        state.close()


def test_serve_alone_pauses_a_failing_arm_on_the_embedded_store(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG)
    store = f"duckdb:///{tmp_path / 'events.duckdb'}"
    with serving(cfg, store, tmp_path, "a") as port:
        took = drive_until_paused([port], f"sqlite:///{tmp_path / 'events.state.sqlite'}", 30)
        assert took < 30
        status = healthz(port)["controller"]
        assert isinstance(status, dict) and status["running"]
        exp = status["experiments"]["exp_guard"]
        assert exp["lease_holder"] == status["holder"] and exp["last_tick"]
        # the paused arm's units now get control, without a restart
        assert chat(port, "u1") == "control"


def test_no_controller_leaves_the_experiment_alone(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG)
    store = f"duckdb:///{tmp_path / 'events.duckdb'}"
    with serving(cfg, store, tmp_path, "a", ("--no-controller",)) as port:
        for i in range(300):
            chat(port, f"u{i}")
        time.sleep(5)  # two check intervals
        assert healthz(port)["controller"] is None
    state = open_state(f"sqlite:///{tmp_path / 'events.state.sqlite'}")
    try:
        current = state.get("exp_guard")
        assert current is not None and current.paused_variants == ()
    finally:
        state.close()


@pytest.mark.postgres
def test_two_serve_processes_on_postgres_pause_exactly_once(
    tmp_path: Path, pg_url: str, unique_name: str
) -> None:
    from tests.state.conftest import drop_pg_schema

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG)
    store = f"{pg_url}?schema={unique_name}"
    try:
        with ExitStack() as stack:
            ports = [stack.enter_context(serving(cfg, store, tmp_path, n)) for n in "ab"]
            drive_until_paused(ports, store, 30)
            time.sleep(5)  # two more check intervals: the other process must not act again
            holders = {holder(p) for p in ports}
            assert len(holders) == 1  # both see the same single holder
            # the holder dies without releasing its lease: the other takes over on expiry
            acting = next(p for p in ports if holder(p) == me(p))
            other = next(p for p in ports if p != acting)
            PROCESSES[acting].send_signal(signal.SIGKILL)
            PROCESSES[acting].wait(timeout=10)
            deadline = time.monotonic() + 20  # lease: 3 x 2 s, then the next check
            while holder(other) != me(other):
                assert time.monotonic() < deadline, "the lease did not move to the survivor"
                time.sleep(0.5)
        state = open_state(store)
        try:
            pauses = [e for e in state.audit("exp_guard") if e.action == "pause_variant"]
        finally:
            state.close()
        assert len(pauses) == 1, pauses
        assert pauses[0].actor == "abllm serve"
    finally:
        drop_pg_schema(pg_url, unique_name)
