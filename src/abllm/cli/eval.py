"""``abllm eval``: replay a dataset through every variant, score, compare, store the run.

The run is stored in the event store (``--store``) so a later run can ``--compare-to`` it. The
``--json`` document, the ``--output`` rows and every scorer are described in docs/eval.md.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from abllm.cli.common import console, err_console, fail, get_experiment, load_config, print_json
from abllm.errors import AbllmError, ValidationError

STORE_HELP = "event store URL (default: $ABLLM_STORE, else duckdb:///./abllm-data/events.duckdb)"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _print(report: dict[str, Any]) -> None:
    console.print(
        f"run {report['run_id']}: {report['dataset']['rows']} rows x "
        f"{len(report['variants'])} variants, repeat {report['repeat']}",
        markup=False,
        highlight=False,
    )
    table = Table("scorer", *report["variants"], "diff (vs control)", "p")
    for name in report["scorers"]:
        cells = []
        for entry in report["variants"].values():
            s = entry["scores"][name]
            ci = s["ci"]
            band = f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
            pass_k = f" pass^k={_fmt(s['pass_k'])}" if s.get("pass_k") is not None else ""
            cells.append(f"{_fmt(s['mean'])}{band} n={s['n']}{pass_k}")
        diffs = [(vid, by[name]) for vid, by in report["comparisons"].items() if name in by]
        table.add_row(
            name,
            *cells,
            "; ".join(f"{vid} {_fmt(c['diff'])}" for vid, c in diffs),
            "; ".join(_fmt(c["p_value"]) for _, c in diffs),
        )
    console.print(table)
    drift = report.get("drift")
    if drift:
        console.print(f"drift against run {drift['compare_to']}:", markup=False)
        for vid, by in drift["variants"].items():
            for name, d in by.items():
                console.print(
                    f"  {vid} {name}: {_fmt(d['previous'])} -> {_fmt(d['current'])} "
                    f"(diff {_fmt(d['diff'])}, p {_fmt(d['p_value'])})",
                    markup=False,
                    highlight=False,
                )


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command."""

    @app.command("eval")
    def eval_cmd(
        config: Path = typer.Argument(..., help="experiment file (YAML)"),
        experiment: str = typer.Option(..., "--experiment", "-e", help="experiment id or alias"),
        dataset: Path = typer.Option(..., "--dataset", help="JSONL rows {id, input, expected?}"),
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
        output: Path | None = typer.Option(
            None, "--output", help="write one JSON line per (row, variant) here"
        ),
        compare_to: str | None = typer.Option(
            None, "--compare-to", help="run id of an earlier run: report drift against it"
        ),
        concurrency: int = typer.Option(8, "--concurrency", help="provider calls in flight"),
        scorer: list[str] = typer.Option(
            [], "--scorer", help="run only this scorer (repeatable; default: all that apply)"
        ),
        repeat: int = typer.Option(1, "--repeat", help="trials per row and variant (pass^k)"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    ) -> None:
        """Replay a dataset through every variant, score the answers and compare them."""
        from abllm.eval.dataset import load_dataset
        from abllm.eval.service import EvalOptions, run_eval
        from abllm.events import open_store
        from abllm.providers import ProviderRegistry

        exp = get_experiment(load_config(config), experiment)
        try:
            data = load_dataset(dataset)
        except AbllmError as exc:
            fail(exc)
        if output is not None:  # an unwritable --output fails before any call, not after
            try:
                output.open("a").close()
            except OSError as exc:
                fail(ValidationError(f"--output {output}: {exc.strerror or exc}"))
        try:
            target = open_store(store)
        except AbllmError as exc:
            fail(exc)
        total = len(data.rows) * len(exp.variants) * max(repeat, 1)
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        task = progress.add_task(f"eval {exp.id}", total=total)
        opts = EvalOptions(
            scorers=tuple(scorer),
            repeat=repeat,
            concurrency=concurrency,
            compare_to=compare_to,
            on_progress=lambda: progress.advance(task),
        )

        async def go() -> Any:
            registry = ProviderRegistry(limit=max(concurrency, 1))
            try:
                return await run_eval(exp, data, opts, target, registry)
            finally:
                await registry.aclose()

        try:
            with progress:
                outcome = asyncio.run(go())
        except AbllmError as exc:
            fail(exc)
        finally:
            target.close()
        if output is not None:
            try:
                with output.open("w") as fh:
                    for line in outcome.rows:
                        fh.write(json.dumps(line, default=str) + "\n")
            except OSError as exc:
                fail(ValidationError(f"--output {output}: {exc.strerror or exc}"))
        if as_json:
            print_json(outcome.report)
        else:
            _print(outcome.report)
        if outcome.store_error is not None:
            fail(outcome.store_error, code=1)
