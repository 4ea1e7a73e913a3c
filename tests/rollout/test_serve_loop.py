"""The loop closes inside ``abllm serve``: a guardrail pauses a failing arm with no other process.

The case from the rollout issue: a treatment whose simulated calls fail half the time, a
guardrail ``{metric: error_rate, max_ratio: 2, action: pause, min_units: 50}`` checked every
2 s. On the embedded store one ``serve`` must pause it within 30 s of traffic; on PostgreSQL two
``serve`` processes share the state and the audit log shows exactly one pause. (Control fails
2 % of its calls: the relative bound against a 0 % control is the analysis' degenerate case,
covered by the analysis tests.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from abllm.state import open_state

from ..server.test_serve_cli import free_port

CONFIG = """
experiments:
  - id: exp_guard
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0.02}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0.5}}
    max_retries: 0
    guardrails:
      - {metric: error_rate, max_ratio: 2, action: pause, min_units: 50}
    rollout:
      check_interval_s: 2
"""


@contextmanager
def serving(cfg: Path, store: str, cwd: Path, name: str) -> Iterator[int]:
    """``abllm serve`` in a subprocess until it answers /healthz; yields its port."""
    port = free_port()
    abllm = Path(sys.executable).parent / "abllm"
    proc = subprocess.Popen(
        [
            *(str(abllm), "serve", str(cfg), "--store", store, "--port", str(port)),
            *("--spool-dir", str(cwd / f"spool-{name}")),
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "abllm serve did not become healthy"
                time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()


def chat(port: int, unit: str) -> str:
    body = json.dumps(
        {"model": "exp_guard", "messages": [{"role": "user", "content": "hi"}], "user": unit}
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(resp.headers.get("x-abllm-variant"))
    except urllib.error.HTTPError as exc:
        return str(exc.headers.get("x-abllm-variant"))


def healthz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        data: dict[str, object] = json.loads(resp.read())
    return data


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
            holders = {
                healthz(p)["controller"]["experiments"]["exp_guard"]["lease_holder"]  # type: ignore[index]
                for p in ports
            }
            assert len(holders) == 1  # both see the same single holder
        state = open_state(store)
        try:
            pauses = [e for e in state.audit("exp_guard") if e.action == "pause_variant"]
        finally:
            state.close()
        assert len(pauses) == 1, pauses
        assert pauses[0].actor == "abllm serve"
    finally:
        drop_pg_schema(pg_url, unique_name)
