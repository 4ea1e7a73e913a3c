"""Reading an eval dataset: JSONL, one row an object ``{"id", "input", "expected"?, ...}``.

``input`` is a string (sent as one user message) or a list of chat messages; ``expected`` is a
string or a list of strings (``exact`` passes on any of them, ``contains`` needs all); any other
key is kept in ``meta`` and shown to the judge. A bad row stops the load with an error naming
the file, the line and the field, so a typo never silently drops rows from a comparison.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abllm.errors import ValidationError

_KNOWN = frozenset({"id", "input", "expected"})


@dataclass(frozen=True)
class EvalRow:
    """One dataset row, checked; ``messages`` is the input as chat messages."""

    id: str
    messages: list[dict[str, Any]]
    expected: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_text(self) -> str:
        """The last user message's text (what a judge is shown as the question)."""
        for message in reversed(self.messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return str(message["content"])
        return json.dumps(self.messages, default=str)


@dataclass(frozen=True)
class Dataset:
    """The rows of one file, with the file's SHA-256 so a run records what it replayed."""

    path: str
    rows: list[EvalRow]
    sha256: str


def _bad(where: str, line: int, fld: str, message: str) -> ValidationError:
    return ValidationError(f"{where}:{line}: {fld}: {message}")


def _messages(value: Any, where: str, line: int) -> list[dict[str, Any]]:
    if isinstance(value, str):
        if not value:
            raise _bad(where, line, "input", "must not be empty")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _bad(where, line, "input", "must be a string or a non-empty list of messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise _bad(where, line, f"input[{i}]", "must be an object")
        if not isinstance(message.get("role"), str):
            raise _bad(where, line, f"input[{i}].role", "must be a string")
        if "content" not in message:
            raise _bad(where, line, f"input[{i}].content", "is missing")
    return value


def _expected(value: Any, where: str, line: int) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _bad(where, line, "expected", "must be a string or a non-empty list of strings")


def parse_row(text: str, where: str, line: int) -> EvalRow:
    """One JSONL line as an :class:`EvalRow`; ``ValidationError`` names the line and field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(where, line, "row", f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise _bad(where, line, "row", "must be a JSON object")
    row_id = data.get("id")
    if isinstance(row_id, bool) or not isinstance(row_id, str | int) or row_id == "":
        raise _bad(where, line, "id", "must be a non-empty string or an integer")
    if "input" not in data:
        raise _bad(where, line, "input", "is missing")
    return EvalRow(
        id=str(row_id),
        messages=_messages(data["input"], where, line),
        expected=_expected(data.get("expected"), where, line),
        meta={k: v for k, v in data.items() if k not in _KNOWN},
    )


def load_dataset(path: Path) -> Dataset:
    """Every row of a JSONL file (blank lines skipped); the first bad row raises."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"--dataset {where}: {exc.strerror or exc}") from None
    rows: list[EvalRow] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not text.strip():
            continue
        row = parse_row(text, where, number)
        if row.id in seen:
            raise _bad(where, number, "id", f"{row.id!r} repeats the id of line {seen[row.id]}")
        seen[row.id] = number
        rows.append(row)
    if not rows:
        raise ValidationError(f"--dataset {where}: no rows")
    return Dataset(path=where, rows=rows, sha256=hashlib.sha256(raw).hexdigest())
