"""``?`` placeholders translated per engine without touching quoted text."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from abllm.errors import ValidationError
from abllm.events.sqlparams import clickhouse_literal, inline_params, translate_qmark


def test_qmark_to_psycopg() -> None:
    sql = "SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE 'u%' -- why?\nAND z = ?"
    assert translate_qmark(sql) == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE 'u%%' -- why?\nAND z = %s"
    )


def test_inline_params_escapes_literals() -> None:
    sql = inline_params("SELECT ? , ?, ?, ? WHERE s = '?'", ["it's\\", 3, None, True])
    assert sql == "SELECT 'it\\'s\\\\' , 3, NULL, 1 WHERE s = '?'"


def test_inline_datetime_uuid_and_lists() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert clickhouse_literal(ts) == "toDateTime64('2026-01-02 03:04:05.000006', 6, 'UTC')"
    uid = UUID(int=1)
    assert clickhouse_literal(uid) == f"toUUID('{uid}')"
    assert clickhouse_literal(["a", 1.5]) == "['a', 1.5]"


@pytest.mark.parametrize(("sql", "params"), [("SELECT ?", []), ("SELECT 1", [1])])
def test_placeholder_count_must_match(sql: str, params: list[object]) -> None:
    with pytest.raises(ValidationError, match="placeholders"):
        inline_params(sql, params)
