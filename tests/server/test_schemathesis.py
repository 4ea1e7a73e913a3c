"""Schemathesis against ``/openapi.json``, bounded: no response >= 500, answers match the schema.

Every operation gets a few generated requests (``max_examples``) within a deadline; the app has
an event store and a state store so no route is missing its backend.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from abllm.config import loads_experiments
from abllm.events import EventPipeline, open_store
from abllm.rollout import register_experiments
from abllm.server import create_app
from abllm.state import open_state

CONFIG = """
experiments:
  - id: exp_fuzz
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""


def _app(tmp: Path) -> object:
    config = loads_experiments(CONFIG)
    state = open_state("memory://")
    register_experiments(state, config.experiments, actor="test")
    store = open_store(f"duckdb:///{tmp / 'ev.duckdb'}")
    pipeline = EventPipeline(store, spool_dir=tmp / "spool", flush_interval_s=0.05)
    return create_app(config, pipeline=pipeline, state_store=state)


_TMP = Path(__import__("tempfile").mkdtemp(prefix="abllm-fuzz-"))
schema = schemathesis.openapi.from_asgi("/openapi.json", _app(_TMP))


@pytest.mark.timeout(300)
@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_errors_and_answers_match_the_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
