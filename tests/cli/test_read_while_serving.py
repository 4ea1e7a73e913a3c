"""``abllm analyze --store``, ``abllm events export`` and the dashboard while ``abllm serve``
holds the embedded DuckDB file (they read through the server: docs/events.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from serve_process import GUARD_CONFIG as CONFIG
from serve_process import chat, serving

ABLLM = Path(sys.executable).parent / "abllm"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ABLLM), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_analyze_export_and_dashboard_work_while_serve_holds_the_store(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG)
    store = f"duckdb:///{tmp_path / 'events.duckdb'}"
    with serving(cfg, store, tmp_path, "a") as port:
        served = {chat(port, f"u{i}") for i in range(40)}
        assert served <= {"control", "treatment"}
        assert (tmp_path / "events.duckdb.serve.json").exists()

        analyzed = run(
            "analyze", str(cfg), "-e", "exp_guard", "--store", store, "--json", cwd=tmp_path
        )
        assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
        units = json.loads(analyzed.stdout)["variants"]
        assert sum(v["units"] for v in units.values()) == 40  # the exposures not yet flushed too

        exported = run(
            "events", "export", "--experiment", "exp_guard", "--format", "jsonl",
            "--store", store, cwd=tmp_path,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        lines = [json.loads(x) for x in exported.stdout.splitlines()]
        assert sum(e["type"] == "exposure" for e in lines) == 40

        parquet = tmp_path / "out.parquet"
        run("events", "export", "--experiment", "exp_guard", "--format", "parquet",
            "--store", store, "--output", str(parquet), cwd=tmp_path)  # fmt: skip
        assert parquet.stat().st_size > 0

        url = f"http://127.0.0.1:{port}/dashboard/experiments/exp_guard"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200 and b"exp_guard" in resp.read()
    assert not (tmp_path / "events.duckdb.serve.json").exists()  # withdrawn on exit


def test_a_locked_file_without_a_server_is_a_clear_error(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "events.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ok', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        out = run("events", "export", "--experiment", "x", "--format", "jsonl",
                  "--store", f"duckdb:///{path}", cwd=tmp_path)  # fmt: skip
        assert out.returncode == 2
        assert "another process holds the file" in out.stdout + out.stderr
        assert "Traceback" not in out.stdout + out.stderr
    finally:
        holder.communicate("", timeout=10)
    del duckdb
