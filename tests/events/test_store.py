"""One suite, every backend: idempotent appends, reads through ``events_relation``, migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from abllm.events import COLUMNS, WELL_KNOWN_METRICS, Event, EventStore, open_store
from abllm.events.schema import row_to_event

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def make_events(n: int, experiment_id: str = "exp", start: int = 0) -> list[Event]:
    return [
        Event(
            type="llm_call",
            ts=T0 + timedelta(seconds=i),
            experiment_id=experiment_id,
            variant_id="a" if i % 2 else "b",
            unit_id=f"u{i % 100}",
            trace_id=f"t{i}",
            metrics={"latency_ms": float(i), "error": i % 10 == 0, "custom_score": i},
            attrs={"model": "sim-small", "prompt_version": 3},
        )
        for i in range(start, start + n)
    ]


def test_store_satisfies_protocol(store: EventStore) -> None:
    assert isinstance(store, EventStore)
    assert store.dialect in ("duckdb", "postgres", "clickhouse")
    assert store.count() == 0


def test_idempotent_10k_batch_appended_three_times(store: EventStore) -> None:
    events = make_events(10_000)
    assert store.append(events) == 10_000
    assert store.append(events) == 0
    assert store.append(events) == 0
    assert store.count() == 10_000
    rel = store.events_relation
    total, distinct = store.query(f"SELECT count(*), count(DISTINCT event_id) FROM {rel}")[0]
    assert total == distinct == 10_000


def test_duplicates_inside_one_batch_and_partial_overlap(store: EventStore) -> None:
    events = make_events(10)
    assert store.append([*events[:5], *events[:5]]) == 5
    assert store.append(events) == 5  # the second half is new
    assert store.count() == 10


def test_count_by_experiment(store: EventStore) -> None:
    store.append(make_events(30, "one") + make_events(20, "two", start=100))
    assert store.count("one") == 30
    assert store.count("two") == 20
    assert store.count("absent") == 0


def test_metrics_land_in_columns_and_extra(store: EventStore) -> None:
    store.append(make_events(10))
    rel = store.events_relation
    rows = store.query(
        f"SELECT latency_ms, error, extra, attrs FROM {rel} WHERE trace_id = ?", ["t3"]
    )
    assert len(rows) == 1
    latency, error, extra, attrs = rows[0]
    assert latency == 3.0
    assert error == 0.0  # bools are stored as 1.0/0.0
    assert '"custom_score":3' in extra
    assert '"model":"sim-small"' in attrs


def test_aggregate_in_engine_with_params(store: EventStore) -> None:
    store.append(make_events(100))
    rel = store.events_relation
    rows = store.query(
        f"SELECT variant_id, count(*), sum(error) FROM {rel} "
        "WHERE experiment_id = ? AND ts >= ? GROUP BY variant_id ORDER BY variant_id",
        ["exp", T0 + timedelta(seconds=50)],
    )
    assert [(r[0], int(r[1]), float(r[2])) for r in rows] == [("a", 25, 0.0), ("b", 25, 5.0)]


def test_round_trip_rebuilds_the_event(store: EventStore) -> None:
    event = make_events(1)[0]
    store.append([event])
    cols = ", ".join(COLUMNS)
    (row,) = store.query(f"SELECT {cols} FROM {store.events_relation}")
    back = row_to_event(row)
    assert back.event_id == event.event_id
    assert back.ts == event.ts
    assert back.metrics == {"latency_ms": 0, "error": 1, "custom_score": 0}
    assert back.attrs == event.attrs


def test_table_has_every_documented_column(store: EventStore) -> None:
    rel = store.events_relation
    cols = ", ".join(COLUMNS)
    assert store.query(f"SELECT {cols} FROM {rel} WHERE 1 = 0") == []
    assert len(COLUMNS) == 8 + len(WELL_KNOWN_METRICS) + 2


def test_reopen_keeps_data_and_schema_version(backend_url: tuple[str, str]) -> None:
    _, url = backend_url
    events = make_events(5)
    first = open_store(url)
    first.append(events)
    first.close()
    second = open_store(url)
    try:
        assert second.count() == 5
        assert second.schema_version == 1  # type: ignore[attr-defined]
        assert second.append(events) == 0
    finally:
        second.close()


def test_empty_append_and_fresh_ids(store: EventStore) -> None:
    assert store.append([]) == 0
    a = Event(type="exposure", experiment_id="e", unit_id="u", event_id=uuid4())
    assert store.append([a]) == 1
    assert store.count("e") == 1


@pytest.mark.parametrize("bad", ["SELECT * FROM no_such_table", "SELEC 1"])
def test_bad_sql_is_a_validation_error(store: EventStore, bad: str) -> None:
    from abllm.errors import ValidationError

    with pytest.raises(ValidationError, match="query failed"):
        store.query(bad)


def test_export_pages_through_an_experiment(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from abllm.events import fileio

    monkeypatch.setattr(fileio, "EXPORT_PAGE", 7)  # force keyset paging across pages
    events = make_events(30) + make_events(5, "other", start=100)
    same_ts = [e.model_copy(update={"event_id": uuid4(), "ts": T0}) for e in make_events(4)]
    store.append(events + same_ts)  # ties on ts are ordered by event_id
    out = io.StringIO()
    assert fileio.export_jsonl(store, "exp", out) == 34
    ids = [Event.model_validate_json(line).event_id for line in out.getvalue().splitlines()]
    assert len(set(ids)) == 34
    assert set(ids) == {e.event_id for e in events[:30] + same_ts}
