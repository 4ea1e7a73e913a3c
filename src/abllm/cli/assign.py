"""``abllm assign``: which variant does a unit get, and why? One unit or a file of millions."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import typer
from rich.table import Table

from abllm.assign import Assignment, AssignmentBatch, assign, assign_many
from abllm.assign.batch import REASONS
from abllm.cli.common import console, fail, get_experiment, load_config, print_json
from abllm.config import Experiment
from abllm.errors import ValidationError

CHUNK = 100_000


def parse_attrs(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs to a dict; values that parse as JSON numbers/bools become those."""
    attrs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(ValidationError(f"--attr {pair!r}: expected key=value"))
        try:
            parsed = json.loads(value)
            attrs[key] = parsed if isinstance(parsed, int | float | bool) else value
        except ValueError:
            attrs[key] = value
    return attrs


def _line_prefixes(exp: Experiment, batch: AssignmentBatch) -> dict[tuple[int, int], str]:
    """Pre-rendered JSON up to the bucket for each (variant, reason) pair: no per-line dumps."""
    out = {}
    eid = json.dumps(exp.id)
    for v in range(-1, len(batch.variant_ids)):
        vid = json.dumps(batch.variant_ids[v]) if v >= 0 else "null"
        for r, reason in enumerate(REASONS):
            inside = "true" if v >= 0 else "false"
            out[(v, r)] = (
                f'{{"experiment_id":{eid},"variant_id":{vid},"in_experiment":{inside},'
                f'"reason":"{reason}","bucket":'
            )
    return out


def _render_batch(exp: Experiment, units: list[str], batch: AssignmentBatch) -> str:
    prefixes = _line_prefixes(exp, batch)
    buckets = batch.bucket.tolist()
    lines = [
        f'{prefixes[(v, r)]}{"null" if b != b else b},"unit_id":{json.dumps(u)}}}\n'
        for u, v, r, b in zip(
            units, batch.variant.tolist(), batch.reason.tolist(), buckets, strict=True
        )
    ]
    return "".join(lines)


def _chunks(stream: TextIO) -> Iterator[list[str]]:
    while True:
        lines = list(islice(stream, CHUNK))
        if not lines:
            return
        yield [line.rstrip("\r\n") for line in lines]


def assign_file(exp: Experiment, path: Path, attrs: dict[str, Any], out: TextIO) -> int:
    """Stream assignments for every line of ``path`` (``-`` is stdin), in input order."""
    count = 0
    try:
        stream = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    except OSError as exc:
        fail(ValidationError(f"--units-file {path}: {exc.strerror or exc}"))
    with stream:
        for units in _chunks(stream):
            batch = assign_many(exp, units, attrs or None)
            out.write(_render_batch(exp, units, batch))
            count += len(units)
    return count


def _show(result: Assignment, unit: str) -> None:
    table = Table(title=f"{result.experiment_id} v{result.version}: unit {unit}")
    for column in ("variant", "in experiment", "reason", "bucket", "served config"):
        table.add_column(column)
    table.add_row(
        result.variant_id or "-",
        str(result.in_experiment),
        str(result.reason),
        "-" if result.bucket is None else f"{result.bucket:.4f}",
        result.served_variant_id,
    )
    console.print(table)


def assign_cmd(
    config: Path = typer.Argument(..., help="YAML experiment file"),
    experiment: str = typer.Option(..., "--experiment", "-e", help="experiment id or alias"),
    unit: str | None = typer.Option(None, "--unit", "-u", help="unit id (user, org or session)"),
    units_file: Path | None = typer.Option(
        None, "--units-file", help="file with one unit id per line (- for stdin)"
    ),
    attr: list[str] = typer.Option([], "--attr", "-a", help="unit attribute key=value, repeatable"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (one object per unit)"),
) -> None:
    """Assign a unit (or every unit of a file) to a variant, with the reason."""
    loaded = load_config(config)
    exp = get_experiment(loaded, experiment)
    attrs = parse_attrs(attr)
    if (unit is None) == (units_file is None):
        fail(ValidationError("give exactly one of --unit or --units-file"))
    if units_file is not None:
        assign_file(exp, units_file, attrs, sys.stdout)
        return
    assert unit is not None
    result = assign(exp, unit, attrs)
    if as_json:
        print_json(result.to_json() | {"unit_id": unit})
    else:
        _show(result, unit)


def register(app: typer.Typer) -> None:
    """Add the ``assign`` command."""
    app.command("assign")(assign_cmd)
