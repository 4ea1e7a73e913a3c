"""Event validation at the edge: types, UTC timestamps, ids and the documented size limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from abllm.errors import LimitExceeded, ValidationError
from abllm.events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    Event,
    EventType,
    check_batch,
    parse_batch,
    parse_event,
)
from abllm.events.models import uuid7


def test_defaults_fill_id_and_utc_now() -> None:
    before = datetime.now(UTC)
    event = Event(type="exposure", experiment_id="e", unit_id="u")
    assert event.event_id.version == 7
    assert event.ts.tzinfo is UTC and event.ts >= before
    assert event.experiment_version == 1
    assert event.type is EventType.exposure


def test_naive_and_offset_timestamps_become_utc() -> None:
    naive = Event(type="outcome", experiment_id="e", unit_id="u", ts=datetime(2026, 1, 1, 12))
    assert naive.ts == datetime(2026, 1, 1, 12, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    shifted = Event(
        type="outcome", experiment_id="e", unit_id="u", ts=datetime(2026, 1, 1, 14, tzinfo=plus2)
    )
    assert shifted.ts == datetime(2026, 1, 1, 12, tzinfo=UTC) and shifted.ts.tzinfo is UTC


def test_uuid7_is_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(i.version == 7 for i in ids)
    assert [i.int >> 80 for i in ids] == sorted(i.int >> 80 for i in ids)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "click", "experiment_id": "e", "unit_id": "u"}, "type"),
        ({"type": "exposure", "unit_id": "u"}, "experiment_id"),
        ({"type": "exposure", "experiment_id": "e", "unit_id": ""}, "unit_id"),
        ({"type": "feedback", "experiment_id": "e", "unit_id": "u", "metrics": {"r": "x"}}, "r"),
        ({"type": "feedback", "experiment_id": "e", "unit_id": "u", "nope": 1}, "nope"),
        ({"type": "feedback", "experiment_id": "e", "unit_id": "u", "event_id": "x"}, "event_id"),
    ],
)
def test_invalid_events_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        parse_event(payload)
    with pytest.raises(ValidationError, match=field):
        parse_event(json.dumps(payload))


def test_non_finite_metric_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"metrics.*finite"):
        parse_event(
            {
                "type": "llm_call",
                "experiment_id": "e",
                "unit_id": "u",
                "metrics": {"latency_ms": float("nan")},
            }
        )


def test_event_over_32kb_names_the_limit() -> None:
    big = {"type": "llm_call", "experiment_id": "e", "unit_id": "u", "attrs": {"p": "x" * 33_000}}
    with pytest.raises(LimitExceeded, match=f"{MAX_EVENT_BYTES} bytes \\(32 KB\\) per event"):
        parse_event(big)
    with pytest.raises(LimitExceeded, match="per event"):
        parse_event(json.dumps(big))
    assert LimitExceeded.code == "limit_exceeded"


def test_batch_over_1000_events_names_the_limit() -> None:
    events = [Event(type="exposure", experiment_id="e", unit_id="u")] * (MAX_BATCH_EVENTS + 1)
    with pytest.raises(LimitExceeded, match="1000 events per batch"):
        check_batch(events)
    with pytest.raises(LimitExceeded, match="1000 events per batch"):
        parse_batch([e.model_dump(mode="json") for e in events])


def test_batch_over_1mb_names_the_limit() -> None:
    event = Event(type="llm_call", experiment_id="e", unit_id="u", attrs={"p": "x" * 30_000})
    events = [event] * 40  # 40 x ~30 KB > 1 MB, each under 32 KB
    with pytest.raises(LimitExceeded, match=r"\(1 MB\) per batch"):
        check_batch(events)
    raw = json.dumps([e.model_dump(mode="json") for e in events])
    assert len(raw) > MAX_BATCH_BYTES
    with pytest.raises(LimitExceeded, match=r"\(1 MB\) per batch"):
        parse_batch(raw)


def test_parse_batch_from_json_keeps_ids() -> None:
    events = [Event(type="feedback", experiment_id="e", unit_id=f"u{i}") for i in range(3)]
    raw = json.dumps([e.model_dump(mode="json") for e in events])
    assert [e.event_id for e in parse_batch(raw)] == [e.event_id for e in events]
    with pytest.raises(ValidationError, match=r"1\.unit_id"):
        parse_batch('[{"type":"exposure","experiment_id":"e","unit_id":"u"},{"type":"exposure"}]')


def test_size_bound_never_underestimates() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from abllm.events.models import size_bound

    text = st.text(max_size=40)
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
    finite = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
    )

    @settings(max_examples=300, deadline=None)
    @given(
        ids=st.lists(st.text(min_size=1, max_size=30), min_size=4, max_size=4),
        metrics=st.dictionaries(st.text(min_size=1, max_size=20), finite, max_size=6),
        attrs=st.dictionaries(st.text(min_size=1, max_size=20), scalar, max_size=6),
    )
    def check(ids: list[str], metrics: dict[str, object], attrs: dict[str, object]) -> None:
        # Unvalidated, as the gateway builds them: the bound must hold for any content.
        event = Event.model_construct(
            event_id=uuid7(),
            ts=datetime.now(UTC),
            type=EventType.llm_call,
            experiment_id=ids[0],
            unit_id=ids[1],
            variant_id=ids[2],
            trace_id=ids[3],
            experiment_version=2**40,
            metrics=metrics,
            attrs=attrs,
        )
        assert size_bound(event) >= event.size_bytes()

    check()
