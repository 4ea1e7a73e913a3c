"""``abllm analyze``: events files of every format, the documented --json shape, the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from abllm.cli.main import app
from abllm.events import COLUMNS
from abllm.events.schema import row_to_event

from .simdata import EXPERIMENT_YAML, THREE_ARMS, assert_same, make_events

runner = CliRunner()
NOW = "2024-03-10T00:00:00Z"


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_events(THREE_ARMS)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, table: pa.Table) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("analyze")
    config = root / "exp.yaml"
    config.write_text(EXPERIMENT_YAML)
    jsonl = root / "events.jsonl"
    columns = [table.column(c).to_pylist() for c in COLUMNS]
    with jsonl.open("w") as out:  # the wire shape: metrics and attrs as objects
        for row in zip(*columns, strict=True):
            out.write(row_to_event(row).model_dump_json(exclude_none=True) + "\n")
    parquet = root / "events.parquet"
    pq.write_table(table, parquet)
    csv = root / "events.csv"
    pacsv.write_csv(table, csv)
    return {"config": config, "jsonl": jsonl, "parquet": parquet, "csv": csv}


def analyze_json(files: dict[str, Path], fmt: str) -> dict[str, Any]:
    args = ["analyze", str(files["config"]), "--experiment", "exp", "--events", str(files[fmt])]
    result = runner.invoke(app, [*args, "--json", "--now", NOW])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_json_has_the_documented_shape(files: dict[str, Path]) -> None:
    doc = analyze_json(files, "jsonl")
    assert doc["experiment_id"] == "exp" and doc["control"] == "control"
    assert isinstance(doc["srm"]["p_value"], float) and isinstance(doc["srm"]["flag"], bool)
    assert set(doc["variants"]) == {"control", "treatment", "b"}
    assert all(isinstance(v["units"], int) for v in doc["variants"].values())
    rating = doc["metrics"]["rating"]
    for key in ("n", "mean", "ci"):
        assert key in rating["control"]
    assert "diff" not in rating["control"]  # treatments only
    treatment_keys = [
        "n",
        "mean",
        "ci",
        "diff",
        "diff_ci",
        "p_value",
        "p_value_sequential",
        "rel_lift",
        "rel_ci",
        "chance_to_win",
    ]
    for v in ("treatment", "b"):
        arm = rating[v]
        assert set(treatment_keys) <= set(arm)
        assert isinstance(arm["n"], int) and len(arm["ci"]) == 2 and len(arm["rel_ci"]) == 2
        assert 0.0 <= arm["chance_to_win"] <= 1.0
    rec = doc["recommendation"]
    assert rec["decision"] in {
        "CONTINUE", "SHIP", "KEEP_CONTROL", "NO_DIFFERENCE", "INVALID", "PAUSE"
    }  # fmt: skip
    assert rec["variant"] is None or rec["variant"] in doc["variants"]
    assert isinstance(rec["reason"], str) and rec["reason"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_file_format_gives_the_same_result(files: dict[str, Path], fmt: str) -> None:
    reference = analyze_json(files, "jsonl")
    other = analyze_json(files, fmt)
    assert_same(reference, other)


def test_table_output_like_the_seed(files: dict[str, Path]) -> None:
    args = ["analyze", str(files["config"]), "-e", "exp", "--events", str(files["parquet"])]
    result = runner.invoke(app, [*args, "--now", NOW], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("Variant", "Traffic", "rating (primary)", "Latency", "Cost/Query", "p-value"):
        assert text in out
    assert "Recommendation:" in out and "↑" in out and "✓" in out


def test_store_and_events_together_is_an_error(files: dict[str, Path], tmp_path: Path) -> None:
    args = ["analyze", str(files["config"]), "-e", "exp", "--events", str(files["csv"])]
    result = runner.invoke(app, [*args, "--store", f"duckdb:///{tmp_path}/x.duckdb"])
    assert result.exit_code == 2
    assert "error: invalid_request: give either --store or --events" in result.stderr


def test_unknown_experiment_exits_2(files: dict[str, Path]) -> None:
    args = ["analyze", str(files["config"]), "-e", "nope", "--events", str(files["csv"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "nope" in result.stderr


def test_analyze_a_store_url(files: dict[str, Path], tmp_path: Path, table: pa.Table) -> None:
    from abllm.events import open_store

    url = f"duckdb:///{tmp_path}/events.duckdb"
    store = open_store(url)
    store.append_arrow(table)  # type: ignore[attr-defined]
    store.close()
    args = ["analyze", str(files["config"]), "-e", "exp", "--store", url, "--json", "--now", NOW]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    reference = analyze_json(files, "parquet")
    assert_same(reference, doc)
