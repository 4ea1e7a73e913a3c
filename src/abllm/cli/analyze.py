"""``abllm analyze``: an experiment's results from a store or an events file.

``--events FILE`` (JSONL, CSV or Parquet in the event schema) loads the file into an in-memory
embedded store with the same validation as ``abllm events import`` (bad rows are listed with
their line numbers and, by ``--on-error``, skipped or reject the file), so no store is needed.
The analysis itself always runs inside the store's engine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from abllm.cli.common import console, fail, get_experiment, load_config, print_json
from abllm.errors import AbllmError, ValidationError
from abllm.events import EventStore, open_store

STORE_HELP = "event store URL (default: $ABLLM_STORE, else duckdb:///./abllm-data/events.duckdb)"


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(ValidationError(f"--now {text!r}: expected an ISO 8601 time, e.g. 2024-05-01T12:00Z"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _open(store: str | None, events: Path | None, on_error: str, experiment_id: str) -> EventStore:
    """The store to analyse: the URL given (through ``abllm serve`` when it holds the embedded
    file, see :mod:`abllm.cli.reading`), or an in-memory one loaded from ``events``."""
    if store is not None and events is not None:
        fail(ValidationError("give either --store or --events, not both"))
    if events is None:
        from abllm.cli.reading import open_for_reading

        return open_for_reading(store, experiment_id)
    from abllm.cli.events import OnError, import_file

    if not events.is_file():
        fail(ValidationError(f"--events {events}: no such file"))
    memory = open_store("duckdb:///:memory:")
    try:
        import_file(memory, events, OnError(on_error))
    except AbllmError:
        memory.close()
        raise
    return memory


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command."""

    @app.command()
    def analyze(
        config: Path = typer.Argument(..., help="experiment file (YAML)"),
        experiment: str = typer.Option(..., "--experiment", "-e", help="experiment id or alias"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        events: Path | None = typer.Option(
            None, "--events", help="events file (.jsonl, .csv, .parquet) instead of a store"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
        now: str | None = typer.Option(
            None, "--now", help="analyse events up to this time (ISO 8601; default: now)"
        ),
        on_error: str = typer.Option(
            "reject",
            "--on-error",
            help="bad rows in --events: skip them (reported) or reject the file",
        ),
    ) -> None:
        """Results of one experiment: metrics with CIs, checks and a recommendation."""
        from abllm.analysis import analyze as run_analysis
        from abllm.analysis import print_result, result_to_json

        exp = get_experiment(load_config(config), experiment)
        if on_error not in ("skip", "reject"):
            fail(ValidationError(f"--on-error {on_error!r}: use skip or reject"))
        moment = _parse_now(now)
        try:
            target = _open(store, events, on_error, exp.id)
        except AbllmError as exc:
            fail(exc)
        try:
            result = run_analysis(exp, target, now=moment)
        except AbllmError as exc:
            fail(exc)
        finally:
            target.close()
        if as_json:
            print_json(result_to_json(result))
        else:
            print_result(result, console)
