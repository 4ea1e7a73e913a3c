"""No poison event: what a store cannot take is refused at the edge or dead-lettered, never
retried forever in front of everything else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from abllm.errors import ValidationError
from abllm.events import Event, EventPipeline, EventStore, open_store, parse_event
from abllm.events.deadletter import FILE_NAME, DeadLetters
from abllm.events.models import EventType, unstorable_reason, uuid7
from abllm.events.spool import Spool

from .conftest import drop_store

BASE: dict[str, Any] = {"type": "exposure", "experiment_id": "e", "unit_id": "u"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"experiment_version": 2**31}, "experiment_version"),
        ({"experiment_version": 4294967297}, "experiment_version"),
        ({"unit_id": "a\x00b"}, "unit_id"),
        ({"trace_id": "t\x00"}, "trace_id"),
        ({"variant_id": "\x00"}, "variant_id"),
        ({"unit_id": "u" * 300}, "unit_id"),
        ({"metrics": {"latency_ms": 10**400}}, "metrics"),
        ({"metrics": {"rating": 10**30}}, "metrics"),
        ({"metrics": {"rating": 1e300}}, "metrics"),
        ({"attrs": {"n": 10**30}}, "attrs"),
        ({"ts": "0001-01-01T00:00:00+05:00"}, "ts"),
        ({"ts": "9999-12-31T23:00:00-05:00"}, "ts"),
    ],
)
def test_unstorable_values_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=rf"\b{field}\b"):
        parse_event({**BASE, **change})
    raw = json.dumps({**BASE, **change}).encode()  # the HTTP path parses bytes
    with pytest.raises(ValidationError, match=rf"\b{field}\b"):
        parse_event(raw)


def test_limits_accept_the_largest_valid_values() -> None:
    event = parse_event(
        {
            **BASE,
            "experiment_version": 2**31 - 1,
            "metrics": {"rating": 10**15},
            "unit_id": "u" * 200,
        }
    )
    assert event.experiment_version == 2**31 - 1


def constructed(**fields: Any) -> Event:
    """An event built the gateway's way: no validation."""
    values: dict[str, Any] = {
        "type": EventType.llm_call,
        "experiment_id": "e",
        "experiment_version": 1,
        "variant_id": "a",
        "unit_id": "u",
        "trace_id": None,
        "metrics": {},
        "attrs": {},
        **fields,
    }
    return Event.model_construct(event_id=uuid7(), ts=datetime.now(UTC), **values)


def test_unstorable_reason_uses_the_same_limits() -> None:
    assert unstorable_reason(constructed()) is None
    assert "unit_id" in (unstorable_reason(constructed(unit_id="x" * 300)) or "")
    assert "unit_id" in (unstorable_reason(constructed(unit_id="a\x00")) or "")
    assert "experiment_version" in (
        unstorable_reason(constructed(experiment_version=2**32 + 1)) or ""
    )
    assert "metrics.rating" in (unstorable_reason(constructed(metrics={"rating": 10**30})) or "")
    assert "bytes" in (unstorable_reason(constructed(attrs={"big": "x" * 40_000})) or "")


@pytest.fixture
def pg_store(pg_url: str, unique_name: str) -> Iterator[EventStore]:
    url = f"{pg_url}?schema={unique_name}"
    store = open_store(url)
    yield store
    store.close()
    drop_store("postgres", url)


def dead_letters(spool_dir: Path) -> list[dict[str, Any]]:
    path = spool_dir / FILE_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.postgres
def test_gateway_built_poison_is_dead_lettered_and_the_rest_flows(
    pg_store: EventStore, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    pipeline = EventPipeline(pg_store, spool_dir=spool, flush_interval_s=0.01)
    poison = [
        constructed(unit_id="nul\x00unit"),
        constructed(trace_id="t\x00"),
        constructed(experiment_version=4294967297),  # PostgreSQL's int4 would keep 1
        constructed(unit_id="x" * 300),  # stored, it would break `events export`
        constructed(metrics={"latency_ms": 10**400}),
    ]
    good = [constructed(unit_id=f"ok{i}") for i in range(20)]
    for event in [*poison[:3], *good[:10], *poison[3:], *good[10:]]:
        pipeline.emit(event)
    pipeline.flush(10)
    after = [constructed(unit_id="after")]
    pipeline.submit_sync(after, timeout=10)  # the queue is not blocked
    stats = pipeline.stats
    pipeline.close()

    assert pg_store.count() == 21
    assert pg_store.query("SELECT max(experiment_version) FROM abllm_events") == [(1,)]
    assert (stats.dead_lettered, stats.spooled, stats.spool_bytes) == (5, 0, 0)
    letters = dead_letters(spool)
    assert {letter["event"]["event_id"] for letter in letters} == {str(e.event_id) for e in poison}
    reasons = " | ".join(letter["reason"] for letter in letters)
    for field in ("unit_id", "trace_id", "experiment_version", "metrics.latency_ms"):
        assert field in reasons
    assert DeadLetters(spool).count == 5  # survives a restart


@pytest.mark.postgres
def test_a_store_refusing_data_dead_letters_only_those_events(
    pg_store: EventStore, tmp_path: Path
) -> None:
    """A rule only the store knows (here a CHECK constraint): the batch is split until the
    refused events are found; they are dead-lettered with the store's reason, the rest stored."""
    pg_store.query(
        "ALTER TABLE abllm_events ADD CONSTRAINT no_poison CHECK (unit_id NOT LIKE 'poison%')"
    )
    spool = tmp_path / "spool"
    pipeline = EventPipeline(pg_store, spool_dir=spool, flush_interval_s=0.01)
    batch = [Event(**{**BASE, "unit_id": f"u{i}"}) for i in range(200)]
    batch[17] = Event(**{**BASE, "unit_id": "poison-17"})
    batch[150] = Event(**{**BASE, "unit_id": "poison-150"})
    pipeline.submit_sync(batch, timeout=10)
    pipeline.submit_sync([Event(**{**BASE, "unit_id": "next"})], timeout=10)
    stats = pipeline.stats
    pipeline.close()
    assert pg_store.count() == 199
    assert stats.dead_lettered == 2 and stats.spooled == 0 and stats.store_available
    letters = dead_letters(spool)
    assert sorted(letter["event"]["unit_id"] for letter in letters) == ["poison-150", "poison-17"]
    assert all("no_poison" in letter["reason"] for letter in letters)


@pytest.mark.postgres
def test_spooled_events_that_no_longer_validate_do_not_block_replay(
    pg_store: EventStore, tmp_path: Path
) -> None:
    """A spool written with looser limits (an older version): bad items are dead-lettered on
    replay, the rest of the record and everything behind it reach the store."""
    spool_dir = tmp_path / "spool"
    good = [Event(**{**BASE, "unit_id": f"g{i}"}) for i in range(3)]
    items = [e.model_dump(mode="json") for e in good]
    items.insert(1, {**items[0], "event_id": str(uuid7()), "experiment_version": 2**40})
    items.insert(2, {**items[0], "event_id": str(uuid7()), "unit_id": "nul\u0000"})
    old = Spool(spool_dir)
    old._append(json.dumps(items).encode())
    old.append([Event(**{**BASE, "unit_id": "later"})])
    old.close()

    pipeline = EventPipeline(pg_store, spool_dir=spool_dir, retry_interval_s=0.01)
    assert pipeline.drain(10)
    stats = pipeline.stats
    pipeline.close()
    assert pg_store.count() == 4
    assert stats.dead_lettered == 2
    assert len(dead_letters(spool_dir)) == 2


@pytest.mark.postgres
def test_an_oversized_measured_event_keeps_its_measurements(
    pg_store: EventStore, tmp_path: Path
) -> None:
    """A logged prompt can push an llm_call over 32 KB: the text goes, the measurements stay."""
    pipeline = EventPipeline(pg_store, spool_dir=tmp_path / "spool", flush_interval_s=0.01)
    event = constructed(
        metrics={"latency_ms": 12.5, "output_tokens": 7},
        attrs={"model": "m", "prompt": "😀" * 9000, "response": "ok"},
    )
    pipeline.emit(event)
    pipeline.flush(10)
    stats = pipeline.stats
    pipeline.close()
    assert stats.dead_lettered == 0
    rows = pg_store.query("SELECT latency_ms, output_tokens, attrs FROM abllm_events")
    assert len(rows) == 1 and rows[0][:2] == (12.5, 7.0)
    assert json.loads(rows[0][2]) == {"model": "m", "response": "ok", "truncated": "prompt"}
