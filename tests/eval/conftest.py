"""Eval fixtures: a sim experiment whose arms differ in quality, a small dataset, stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

CONFIG = """
experiments:
  - id: answers
    variants:
      - id: base
        control: true
        llm:
          model: sim-small
          prompt_version: v1
          sim: {quality: QBASE, error_rate: 0, time_scale: 0, latency_ms: 400, output_tokens: 30}
      - id: better
        llm:
          model: sim-small
          prompt_version: v2
          sim: {quality: 4.6, error_rate: 0, time_scale: 0, latency_ms: 250, output_tokens: 45}
    eval:
      regex: "^[A-Za-z]"
      judge:
        llm:
          model: sim-large
          sim: {error_rate: 0, time_scale: 0}
        rubric: The answer stays on the question's topic.
        scale: [1, 10]
        prompt_version: judge-v1
"""

QUESTIONS = [
    "summarize the quarterly revenue report for finance",
    "explain why latency matters for chat users",
    "list the risks of shipping the new search ranking",
    "describe customer feedback about billing pages",
    "what changed in the onboarding flow this week",
    "compare costs of the two hosting providers",
    "draft a reply to a customer asking about refunds",
    "outline next steps for the mobile release",
    "give the main findings of the survey on pricing",
    "report quality problems seen in support tickets",
    "summarize meeting notes about hiring plans",
    "explain trade offs between speed and accuracy",
]


def write_config(path: Path, base_quality: float = 1.6) -> Path:
    path.write_text(CONFIG.replace("QBASE", str(base_quality)))
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "exp.yaml")


@pytest.fixture
def dataset_path(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    lines = []
    for i, q in enumerate(QUESTIONS):
        row: dict[str, object] = {"id": f"r{i}", "input": q, "topic": q.split()[1]}
        if i % 2 == 0:
            row["expected"] = q.split()[-1]
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"duckdb://{tmp_path}/events.duckdb"


BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("chdb", id="chdb", marks=pytest.mark.clickhouse),
]


@pytest.fixture(params=BACKENDS)
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL on each backend (PostgreSQL in its own schema, dropped after)."""
    backend: str = request.param
    if backend == "duckdb":
        yield f"duckdb://{tmp_path}/events.duckdb"
        return
    if backend == "chdb":
        request.getfixturevalue("chdb_available")
        yield f"chdb://{tmp_path}/chdb"
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("unique_name")
    url = f"{pg_url}?schema={schema}"
    yield url
    from abllm.events import open_store

    store = open_store(url)
    try:
        store.query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        store.close()
