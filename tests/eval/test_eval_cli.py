"""``abllm eval`` as users run it: a small sim dataset, the JSON report, ROWS, drift, repeat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from typer.testing import CliRunner

from abllm.cli.main import app

from .conftest import write_config

runner = CliRunner()


def run_eval(*args: str | Path) -> dict[str, Any]:
    result = runner.invoke(app, ["eval", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def first(
    config_path: Path, dataset_path: Path, store_url: str, tmp_path: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = tmp_path / "rows-out.jsonl"
    doc = run_eval(
        config_path,
        "-e",
        "answers",
        "--dataset",
        dataset_path,
        "--store",
        store_url,
        "--output",
        out,
    )
    return doc, read_rows(out)


def test_report_shape_and_per_variant_scores(first: tuple[dict[str, Any], Any]) -> None:
    doc, rows = first
    assert set(doc) >= {"run_id", "variants", "comparisons"}
    assert doc["scorers"] == [
        "exact",
        "contains",
        "regex",
        "length",
        "latency_ms",
        "cost_usd",
        "refusal",
        "judge",
    ]
    assert set(doc["variants"]) == {"base", "better"}
    for variant in doc["variants"].values():
        for name, score in variant["scores"].items():
            assert set(score) == {"mean", "n", "ci"}, name
    base, better = doc["variants"]["base"]["scores"], doc["variants"]["better"]["scores"]
    assert base["judge"]["n"] == better["judge"]["n"] == 12
    assert base["contains"]["n"] == 6  # only rows with `expected`
    # The better arm grounds its answers in the question: the judge and latency see it.
    assert better["judge"]["mean"] > base["judge"]["mean"] + 2
    assert better["latency_ms"]["mean"] < base["latency_ms"]["mean"]
    assert doc["judge"]["model"] == "sim-large"
    assert doc["judge"]["prompt_version"] == "judge-v1"
    assert len(doc["judge"]["prompt_sha"]) == 12
    assert set(doc["comparisons"]) == {"better"}
    cmp = doc["comparisons"]["better"]["judge"]
    assert set(cmp) >= {"diff", "ci", "p_value"}
    assert cmp["ci"][0] < cmp["diff"] < cmp["ci"][1]
    assert cmp["p_value"] < 0.01
    assert len(rows) == 24
    assert set(rows[0]) >= {"row_id", "variant_id", "output", "scores"}


def test_paired_p_values_equal_scipy_on_rows(first: tuple[dict[str, Any], Any]) -> None:
    doc, rows = first
    by: dict[str, dict[str, dict[str, float]]] = {}
    for line in rows:
        for name, value in line["scores"].items():
            by.setdefault(name, {}).setdefault(line["variant_id"], {})
            by[name][line["variant_id"]][line["row_id"]] = value
    for name in ("judge", "latency_ms", "length", "cost_usd"):
        ids = sorted(by[name]["base"])
        a = [by[name]["base"][i] for i in ids]
        b = [by[name]["better"][i] for i in ids]
        res = stats.ttest_rel(b, a)
        got = doc["comparisons"]["better"][name]
        assert got["p_value"] == pytest.approx(res.pvalue, rel=1e-9), name
        ci = res.confidence_interval(0.95)
        assert got["ci"] == pytest.approx([ci.low, ci.high], rel=1e-9)
        assert got["diff"] == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
    for name in ("contains", "regex"):
        ids = sorted(by[name]["base"])
        table = [[0, 0], [0, 0]]
        for i in ids:
            table[int(by[name]["base"][i])][int(by[name]["better"][i])] += 1
        got = doc["comparisons"]["better"][name]
        if table[0][1] + table[1][0]:
            assert got["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue), name
        else:
            assert got["p_value"] == 1.0


def test_judge_is_deterministic(
    first: tuple[dict[str, Any], Any], config_path: Path, dataset_path: Path, store_url: str
) -> None:
    doc, _ = first
    again = run_eval(config_path, "-e", "answers", "--dataset", dataset_path, "--store", store_url)
    assert again["run_id"] != doc["run_id"]
    for vid in ("base", "better"):
        assert again["variants"][vid]["scores"] == doc["variants"][vid]["scores"]


def test_drift_against_an_earlier_run(
    first: tuple[dict[str, Any], Any], dataset_path: Path, store_url: str, tmp_path: Path
) -> None:
    doc, _ = first
    same = run_eval(
        tmp_path / "exp.yaml",
        "-e",
        "answers",
        "--dataset",
        dataset_path,
        "--store",
        store_url,
        "--compare-to",
        doc["run_id"],
    )
    assert same["drift"]["compare_to"] == doc["run_id"]
    unchanged = same["drift"]["variants"]["base"]["judge"]
    assert unchanged["diff"] == 0.0 and unchanged["paired"] is True and unchanged["n"] == 12
    # The control's quality regresses: drift shows on its judge score, not on the other arm.
    worse = write_config(tmp_path / "worse.yaml", base_quality=1.0)
    after = run_eval(
        worse,
        "-e",
        "answers",
        "--dataset",
        dataset_path,
        "--store",
        store_url,
        "--compare-to",
        doc["run_id"],
    )
    drift = after["drift"]["variants"]
    assert drift["base"]["judge"]["diff"] < 0
    assert drift["base"]["judge"]["previous"] == doc["variants"]["base"]["scores"]["judge"]["mean"]
    assert drift["base"]["judge"]["p_value"] < 0.05
    assert drift["better"]["judge"]["diff"] == 0.0


def test_repeat_reports_pass_k(config_path: Path, dataset_path: Path, store_url: str) -> None:
    doc = run_eval(
        config_path,
        "-e",
        "answers",
        "--dataset",
        dataset_path,
        "--store",
        store_url,
        "--repeat",
        "3",
        "--scorer",
        "contains",
        "--scorer",
        "judge",
    )
    assert doc["repeat"] == 3 and doc["scorers"] == ["contains", "judge"]
    contains = doc["variants"]["better"]["scores"]["contains"]
    assert 0.0 <= contains["pass_k"] <= contains["mean"] <= 1.0
    assert "pass_k" not in doc["variants"]["better"]["scores"]["judge"]
    assert doc["variants"]["better"]["calls"] == 36


def test_repeat_rows_list_every_trial(
    config_path: Path, dataset_path: Path, store_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    doc = run_eval(
        config_path,
        "-e",
        "answers",
        "--dataset",
        dataset_path,
        "--store",
        store_url,
        "--repeat",
        "2",
        "--scorer",
        "contains",
        "--output",
        out,
    )
    rows = [r for r in read_rows(out) if "contains" in r["scores"]]
    for line in rows:
        trials = [t["scores"]["contains"] for t in line["trials"]]
        assert line["scores"]["contains"] == pytest.approx(sum(trials) / 2)
    by_row: dict[str, list[float]] = {}
    for line in rows:
        if line["variant_id"] == "better":
            by_row[line["row_id"]] = [t["scores"]["contains"] for t in line["trials"]]
    expect = sum(all(v == 1.0 for v in vals) for vals in by_row.values()) / len(by_row)
    assert doc["variants"]["better"]["scores"]["contains"]["pass_k"] == pytest.approx(expect)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "hi"}', "rows.jsonl:2: id: must be a non-empty string or an integer"),
        ('{"id": "x"}', "rows.jsonl:2: input: is missing"),
        ('{"id": "x", "input": [{"content": "hi"}]}', "rows.jsonl:2: input[0].role: must be"),
        ('{"id": "x", "input": "q", "expected": 3}', "rows.jsonl:2: expected: must be a string"),
        ('{"id": "a", "input": "q"}', "rows.jsonl:2: id: 'a' repeats the id of line 1"),
        ("{not json", "rows.jsonl:2: row: not valid JSON"),
    ],
)
def test_bad_dataset_row_names_line_and_field(
    config_path: Path, tmp_path: Path, store_url: str, line: str, message: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a", "input": "fine"}\n' + line + "\n")
    result = runner.invoke(
        app,
        ["eval", str(config_path), "-e", "answers", "--dataset", str(path), "--store", store_url],
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scorer", "bleu"], "--scorer 'bleu': unknown scorer"),
        (["--scorer", "json_schema"], "scorer 'json_schema' cannot run: no variant has"),
        (["--compare-to", "nope"], "--compare-to nope: no eval run with this id"),
        (["--repeat", "0"], "--repeat 0: must be at least 1"),
        (["--concurrency", "0"], "--concurrency 0: must be at least 1"),
        (["--output", "/no/such/dir/rows.jsonl"], "--output /no/such/dir/rows.jsonl: No such"),
    ],
)
def test_bad_options_exit_2(
    config_path: Path, dataset_path: Path, store_url: str, args: list[str], message: str
) -> None:
    result = runner.invoke(
        app,
        [
            "eval",
            str(config_path),
            "-e",
            "answers",
            "--dataset",
            str(dataset_path),
            "--store",
            store_url,
            *args,
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_human_output_with_repeat(config_path: Path, dataset_path: Path, store_url: str) -> None:
    args = ["eval", str(config_path), "-e", "answers", "--dataset", str(dataset_path)]
    result = runner.invoke(app, [*args, "--store", store_url, "--repeat", "2"])
    assert result.exit_code == 0, result.output
    assert "pass^k=" in result.stdout and "repeat 2" in result.stdout


def test_human_output(config_path: Path, dataset_path: Path, store_url: str) -> None:
    result = runner.invoke(
        app,
        [
            "eval",
            str(config_path),
            "-e",
            "answers",
            "--dataset",
            str(dataset_path),
            "--store",
            store_url,
            "--scorer",
            "judge",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "judge" in result.stdout and "better" in result.stdout
