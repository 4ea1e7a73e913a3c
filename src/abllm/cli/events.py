"""``abllm events import|export``: bulk-load event files into a store and export experiments.

Import validates every row like the HTTP API does; bad rows are reported with their line
numbers and, by ``--on-error``, either skipped (the rest is imported) or reject the whole file
(nothing is imported). Nothing is dropped silently. Import is idempotent: re-importing a file
adds no rows, because stores ignore known ``event_id`` values (rows without an ``event_id``
get a fresh one, so give ids to files you may import twice).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from abllm.cli.common import err_console, fail
from abllm.errors import AbllmError, NotFound, ValidationError
from abllm.events import Event, EventStore, open_store
from abllm.events.fileio import BadRow, detect_format, export_jsonl, export_parquet, read_events

STORE_HELP = "event store URL (default: $ABLLM_STORE, else duckdb:///./abllm-data/events.duckdb)"
CHUNK = 10_000
SHOWN_ERRORS = 20


class OnError(StrEnum):
    """What to do with rows that fail validation."""

    skip = "skip"
    reject = "reject"


class ExportFormat(StrEnum):
    """Export file formats."""

    parquet = "parquet"
    jsonl = "jsonl"


def _progress(path: Path, fmt: str) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn()]
    columns += [DownloadColumn()] if fmt != "parquet" else [TextColumn("{task.completed} rows")]
    return Progress(*columns, TimeRemainingColumn(), console=err_console, transient=True)


def _report(bad: list[BadRow], total_bad: int, path: Path) -> None:
    for row in bad:
        err_console.print(
            f"{path.name}:{row.line}: {row.message}", markup=False, highlight=False, soft_wrap=True
        )
    if total_bad > len(bad):
        err_console.print(f"... and {total_bad - len(bad)} more bad rows", markup=False)


def _scan(path: Path, fmt: str) -> tuple[list[BadRow], int]:
    """Validate the whole file first (``--on-error reject``)."""
    shown: list[BadRow] = []
    total = 0
    for _, row in read_events(path, fmt):
        if isinstance(row, BadRow):
            total += 1
            if len(shown) < SHOWN_ERRORS:
                shown.append(row)
    return shown, total


def import_file(store: EventStore, path: Path, on_error: OnError) -> tuple[int, int, int]:
    """Import ``path``; returns (valid rows, rows newly stored, bad rows skipped)."""
    fmt = detect_format(path)
    if on_error is OnError.reject:
        shown, total_bad = _scan(path, fmt)
        if total_bad:
            _report(shown, total_bad, path)
            raise ValidationError(
                f"{path.name}: {total_bad} bad rows; nothing imported "
                "(use --on-error skip to import the valid rows)"
            )
    valid = added = 0
    shown = []
    total_bad = 0
    chunk: list[Event] = []
    size = path.stat().st_size if fmt != "parquet" else None
    with _progress(path, fmt) as progress:
        task = progress.add_task(f"importing {path.name}", total=size)
        for _, row in read_events(path, fmt, lambda done: progress.update(task, completed=done)):
            if isinstance(row, BadRow):
                total_bad += 1
                if len(shown) < SHOWN_ERRORS:
                    shown.append(row)
                continue
            chunk.append(row)
            if len(chunk) >= CHUNK:
                added += store.append(chunk)
                valid += len(chunk)
                chunk = []
        if chunk:
            added += store.append(chunk)
            valid += len(chunk)
    if total_bad:
        _report(shown, total_bad, path)
    return valid, added, total_bad


def register(app: typer.Typer) -> None:
    """Add the ``events`` command group."""
    events_app = typer.Typer(name="events", help="Import and export events.", no_args_is_help=True)
    app.add_typer(events_app)

    @events_app.command("import")
    def import_cmd(
        file: Path = typer.Argument(..., help="events file: .jsonl, .csv or .parquet"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        on_error: OnError = typer.Option(
            OnError.reject,
            "--on-error",
            help="bad rows: skip them (reported) or reject the whole file",
        ),
    ) -> None:
        """Load events from a file, validated and deduplicated by event_id."""
        if not file.is_file():
            fail(ValidationError(f"{file}: no such file"))
        try:
            target = open_store(store)
        except AbllmError as exc:
            fail(exc)
        try:
            valid, added, bad = import_file(target, file, on_error)
        except AbllmError as exc:
            fail(exc)
        finally:
            target.close()
        skipped = f", skipped {bad} bad rows" if bad else ""
        sys.stdout.write(
            f"imported {valid} events from {file.name} ({added} new, "
            f"{valid - added} already stored){skipped}\n"
        )

    @events_app.command("export")
    def export_cmd(
        experiment: str = typer.Option(..., "--experiment", help="experiment id"),
        fmt: ExportFormat = typer.Option(..., "--format", help="parquet or jsonl"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        output: Path | None = typer.Option(
            None, "--output", help="file to write (default: stdout for jsonl; required for parquet)"
        ),
    ) -> None:
        """Write one experiment's events, ordered by time."""
        if fmt is ExportFormat.parquet and output is None:
            fail(ValidationError("--format parquet needs --output PATH"))
        from abllm.cli.reading import open_for_reading

        try:  # through `abllm serve` when it holds the embedded file (abllm.cli.reading)
            source = open_for_reading(store, experiment)
        except AbllmError as exc:
            fail(exc)
        try:
            if fmt is ExportFormat.parquet:
                assert output is not None
                n = export_parquet(source, experiment, output)
            elif output is None:
                n = export_jsonl(source, experiment, sys.stdout)
            else:
                with output.open("w", encoding="utf-8") as out:
                    n = export_jsonl(source, experiment, out)
        except AbllmError as exc:
            fail(exc)
        finally:
            source.close()
        if n == 0:
            if output is not None:
                output.unlink(missing_ok=True)
            fail(NotFound(f"no events for experiment {experiment!r} in the store"))
        if output is not None:
            err_console.print(f"exported {n} events to {output}", markup=False, highlight=False)
