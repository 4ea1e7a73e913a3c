"""``abllm events import|export`` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abllm.cli.main import app
from abllm.events import Event, open_store

runner = CliRunner()


def wire(i: int, exp: str = "exp") -> dict[str, object]:
    event = Event(
        type="feedback",
        experiment_id=exp,
        unit_id=f"u{i}",
        variant_id="a",
        metrics={"rating": i % 5, "thumbs_up": i % 2 == 0, "custom": 1.5},
        attrs={"model": "sim"},
    )
    return event.model_dump(mode="json")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"duckdb://{tmp_path}/events.duckdb"


def count(url: str, exp: str | None = None) -> int:
    store = open_store(url)
    try:
        return store.count(exp)
    finally:
        store.close()


def test_import_jsonl_is_idempotent(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(wire(i)) for i in range(25)) + "\n")
    result = runner.invoke(app, ["events", "import", str(path), "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "imported 25 events" in result.stdout and "25 new" in result.stdout
    again = runner.invoke(app, ["events", "import", str(path), "--store", store_url])
    assert "0 new, 25 already stored" in again.stdout
    assert count(store_url) == 25


def test_store_defaults_to_env(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABLLM_STORE", store_url)
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(wire(1)) + "\n")
    assert runner.invoke(app, ["events", "import", str(path)]).exit_code == 0
    assert count(store_url) == 1


def test_bad_rows_reported_with_line_numbers(tmp_path: Path, store_url: str) -> None:
    good = [json.dumps(wire(i)) for i in range(3)]
    lines = [
        good[0],
        '{"type": "nope", "experiment_id": "e", "unit_id": "u"}',
        good[1],
        "{oops",
        good[2],
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")

    rejected = runner.invoke(app, ["events", "import", str(path), "--store", store_url])
    assert rejected.exit_code == 2
    assert "mixed.jsonl:2: invalid event: type" in rejected.stderr
    assert "mixed.jsonl:4:" in rejected.stderr
    assert "error: invalid_request: mixed.jsonl: 2 bad rows; nothing imported" in " ".join(
        rejected.stderr.split()
    )
    assert count(store_url) == 0

    skipped = runner.invoke(
        app, ["events", "import", str(path), "--store", store_url, "--on-error", "skip"]
    )
    assert skipped.exit_code == 0
    assert "mixed.jsonl:2:" in skipped.stderr and "mixed.jsonl:4:" in skipped.stderr
    assert "imported 3 events" in skipped.stdout and "skipped 2 bad rows" in skipped.stdout
    assert count(store_url) == 3


def test_import_csv_flat_columns(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "type,experiment_id,unit_id,variant_id,rating,thumbs_up,metrics.score,attrs.model\n"
        "feedback,exp,u1,a,4,true,0.5,gpt\n"
        'feedback,exp,u2,b,,false,,"multi\nline"\n'
        "feedback,exp,,a,4,true,,\n"
    )
    result = runner.invoke(
        app, ["events", "import", str(path), "--store", store_url, "--on-error", "skip"]
    )
    assert result.exit_code == 0, result.output
    assert "events.csv:5: invalid event: unit_id" in result.stderr  # line 5: after a 2-line row
    store = open_store(store_url)
    rows = store.query(
        "SELECT unit_id, rating, thumbs_up, extra, attrs FROM abllm_events ORDER BY 1"
    )
    store.close()
    assert rows == [
        ("u1", 4.0, 1.0, '{"score":0.5}', '{"model":"gpt"}'),
        ("u2", None, 0.0, None, '{"model":"multi\\nline"}'),
    ]


def test_export_then_import_round_trip(tmp_path: Path, store_url: str) -> None:
    store = open_store(store_url)
    store.append(
        [Event.model_validate(wire(i)) for i in range(40)]
        + [Event.model_validate(wire(0, "other"))]
    )
    store.close()

    out = tmp_path / "exp.jsonl"
    r = runner.invoke(
        app,
        [
            "events",
            "export",
            "--experiment",
            "exp",
            "--format",
            "jsonl",
            "--store",
            store_url,
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert len(lines) == 40 and json.loads(lines[0])["experiment_id"] == "exp"

    stdout = runner.invoke(
        app, ["events", "export", "--experiment", "exp", "--format", "jsonl", "--store", store_url]
    )
    assert len(stdout.stdout.splitlines()) == 40

    pq = tmp_path / "exp.parquet"
    r = runner.invoke(
        app,
        [
            "events",
            "export",
            "--experiment",
            "exp",
            "--format",
            "parquet",
            "--store",
            store_url,
            "--output",
            str(pq),
        ],
    )
    assert r.exit_code == 0, r.output
    other = f"duckdb://{tmp_path}/copy.duckdb"
    for path in (pq, out):
        r = runner.invoke(app, ["events", "import", str(path), "--store", other])
        assert r.exit_code == 0, r.output
    assert count(other) == 40  # both files carry the same event ids


def test_export_errors(tmp_path: Path, store_url: str) -> None:
    r = runner.invoke(
        app, ["events", "export", "--experiment", "x", "--format", "parquet", "--store", store_url]
    )
    assert r.exit_code == 2 and "--format parquet needs --output" in r.stderr
    r = runner.invoke(
        app,
        ["events", "export", "--experiment", "missing", "--format", "jsonl", "--store", store_url],
    )
    assert r.exit_code == 2 and "error: not_found: no events for experiment 'missing'" in r.stderr


def test_import_errors(tmp_path: Path, store_url: str) -> None:
    r = runner.invoke(
        app, ["events", "import", str(tmp_path / "absent.jsonl"), "--store", store_url]
    )
    assert r.exit_code == 2 and "no such file" in r.stderr
    odd = tmp_path / "events.xml"
    odd.write_text("<x/>")
    r = runner.invoke(app, ["events", "import", str(odd), "--store", store_url])
    assert r.exit_code == 2 and "use .jsonl, .csv or .parquet" in " ".join(r.stderr.split())
    r = runner.invoke(app, ["events", "import", str(odd), "--store", "mysql://x"])
    assert r.exit_code == 2 and "unknown store URL scheme" in r.stderr
