"""``?`` placeholders everywhere: translation for engines that spell them differently.

Analysis SQL is written once with ``?`` (DuckDB's style). PostgreSQL (psycopg) wants ``%s``;
ClickHouse (chdb, and the HTTP client's client-side binding) gets the values inlined as
escaped literals. Quoted strings, quoted identifiers and comments are left untouched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from abllm.errors import ValidationError

# A quoted string, a quoted identifier, a comment, or one character of anything else.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|--[^\n]*|/\*.*?\*/|.", re.S)


def _rewrite(sql: str, replace: Callable[[str], str]) -> str:
    return "".join(replace(tok) if len(tok) == 1 else tok for tok in _TOKEN.findall(sql))


def translate_qmark(sql: str) -> str:
    """``?`` -> ``%s`` outside quotes and ``%`` -> ``%%`` everywhere (psycopg scans literals)."""
    return "".join("%s" if tok == "?" else tok.replace("%", "%%") for tok in _TOKEN.findall(sql))


def clickhouse_literal(value: Any) -> str:
    """An escaped ClickHouse SQL literal for one parameter value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"query parameter {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"toDateTime64('{value.isoformat(sep=' ')}', 6, 'UTC')"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, UUID):
        return f"toUUID('{value}')"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(clickhouse_literal(v) for v in value) + "]"
    raise ValidationError(f"unsupported query parameter type {type(value).__name__}")


def inline_params(sql: str, params: Sequence[Any]) -> str:
    """Replace each ``?`` outside quotes by the escaped literal of the next parameter."""
    values = iter(params)
    used = 0

    def replace(ch: str) -> str:
        nonlocal used
        if ch != "?":
            return ch
        try:
            value = next(values)
        except StopIteration:
            raise ValidationError(
                f"query has more ? placeholders than the {len(params)} parameters given"
            ) from None
        used += 1
        return clickhouse_literal(value)

    out = _rewrite(sql, replace)
    if used != len(params):
        raise ValidationError(f"query has {used} ? placeholders but {len(params)} parameters")
    return out
